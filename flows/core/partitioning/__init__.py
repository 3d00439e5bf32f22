"""partitioning"""
