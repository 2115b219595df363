"""Body models, camera, the R-CNN with its SMPL branch, and per-person losses."""
