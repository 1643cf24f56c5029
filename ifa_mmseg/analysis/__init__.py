"""What the scripts of tools/analysis_tools/ share (benchmark workers, FLOP counting); imported by them only."""
