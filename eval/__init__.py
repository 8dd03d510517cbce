"""The held-out-character benchmark (issue 6). Nothing here yet: `make eval` arrives with that issue."""
