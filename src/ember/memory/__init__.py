"""ember.memory"""
