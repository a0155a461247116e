"""One-phase training of every modality (paper §3.2-3.3, supplement §3): config, optimizer, loop."""
