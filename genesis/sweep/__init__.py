"""`genesis sweep`: tune configuration numbers by deterministic replays (docs/sweep.md).

sweepfile reads the sweep file, keys changes configuration numbers, trials runs one
trial, workers runs many, search chooses them (grid or Optuna), report shows and
writes the results."""
