"""The Hub: pull and publish checkpoints through huggingface_hub, and convert official ones."""
