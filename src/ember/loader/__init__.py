"""ember.loader"""
