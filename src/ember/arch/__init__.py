"""ember.arch"""
