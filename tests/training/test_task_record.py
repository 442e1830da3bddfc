"""What a SeqTask writes into its checkpoints for `zoo export`."""

from zoo.training.task import SeqTask, base_model_of


def test_checkpoint_record_names_the_weights_a_fine_tune_started_from():
    assert base_model_of("hyenadna-small-32k") == "LongSafari/hyenadna-small-32k-seqlen-hf"
    assert base_model_of("hyenadna-tiny") == "seqzoo/hyenadna-tiny", "weights bundled until published there"
    assert base_model_of("hybridna-small") is None, "no published weights"
    assert base_model_of(None) is None
    assert base_model_of("no-such-model") is None, "build_model reports unknown entries"


def test_a_task_trained_from_scratch_records_no_base_model():
    checkpoint = {}
    SeqTask(entry="hyenadna-tiny").on_save_checkpoint(checkpoint)
    record = next(v for v in checkpoint.values() if isinstance(v, dict) and "model_config" in v)
    assert record["entry"] == "hyenadna-tiny" and record["base_model"] is None
