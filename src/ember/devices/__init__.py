"""ember.devices"""
