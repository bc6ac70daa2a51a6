"""ember.devices.legacy"""
