"""ember.vmm"""
