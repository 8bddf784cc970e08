"""Safe, compiled expressions: `check` parses and whitelists, `compile_expr` turns a
checked expression into a Python function."""
from genesis.expr.checker import Checked, ExprError, Scope, check
from genesis.expr.compiler import CompiledExpr, compile_checked, compile_expr, compile_stage

__all__ = ["Checked", "CompiledExpr", "ExprError", "Scope", "check", "compile_checked", "compile_expr", "compile_stage"]
