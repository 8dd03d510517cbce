"""Fine-tuning on Dramatis data with TRL (issue 5). Nothing here yet: `make train` arrives with that issue."""
