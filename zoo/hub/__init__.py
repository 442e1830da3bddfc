"""The Hub: pull and publish checkpoints through huggingface_hub, and convert official ones.

* ``zoo.hub.download``: ``fetch(repo_id, revision)`` -> a checked local snapshot folder (safetensors only);
* ``zoo.hub.publish``: ``push(folder, repo_id, tag=...)`` -> the commit sha;
* ``zoo.hub.convert``: official checkpoints of other projects -> ``SeqModel``.
"""
