"""ember.kvm"""
