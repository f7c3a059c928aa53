"""Watching a deployed model: has what it is asked to score moved away from what it was trained on?"""
