"""Training: masked-image pretraining, fine-tuning, record-grouped evaluation, the low-label study, bundles."""
