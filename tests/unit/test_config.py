import pytest

from tfrs_app.config import Config, ConfigError, load_config, replace


def test_defaults_validate_and_round_trip(tmp_path):
    cfg = load_config()
    assert cfg == Config()
    cfg.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_yaml_and_overrides_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("retrieval: {epochs: 7, hidden_layers: [32, 16]}\ndata: {split: random}\n")
    cfg = load_config(path, ["retrieval.epochs=2"])
    assert cfg.retrieval.epochs == 2
    assert cfg.retrieval.hidden_layers == (32, 16)
    assert cfg.data.split == "random"
    assert replace(cfg, **{"index.k": 5}).index.k == 5


@pytest.mark.parametrize("override, field", [
    ("retrieval.temperature=-1", "retrieval.temperature"),
    ("retrieval.epochs=three", "retrieval.epochs"),
    ("retrieval.epochs=0", "retrieval.epochs"),
    ("retrieval.use_logq=maybe", "retrieval.use_logq"),
    ("retrieval.optimizer=sgd", "retrieval.optimizer"),
    ("data.source=movielens/5m", "data.source"),
    ("data.split=sideways", "data.split"),
    ("data.test_fraction=1.5", "data.test_fraction"),
    ("data.synthetic.num_users=0", "data.synthetic.num_users"),
    ("index.target_recall=0", "index.target_recall"),
    ("retrieval.embeding_dim=8", "retrieval.embeding_dim"),
    ("retrieval.num_sampled_negatives=-1", "retrieval.num_sampled_negatives"),
    ("retrieval.num_hard_negatives=8", "retrieval.num_hard_negatives"),  # more than the 0 sampled
    ("retrieval.negative_sampling=hard", "retrieval.negative_sampling"),
    ("retrieval.early_stopping_metric=recall@50", "retrieval.early_stopping_metric"),  # 50 is not in eval_ks
    ("retrieval.early_stopping_metric=auc", "retrieval.early_stopping_metric"),
    ("retrieval.early_stopping_patience=-1", "retrieval.early_stopping_patience"),
    ("retrieval.lr_schedule=step", "retrieval.lr_schedule"),
    ("retrieval.history_dropout=1.0", "retrieval.history_dropout"),
    ("retrieval.baselines=[ease, slim]", "retrieval.baselines"),
    ("retrieval.recency_half_life_days=-30", "retrieval.recency_half_life_days"),
    ("retrieval.item_bias=sometimes", "retrieval.item_bias"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_tabular_source_needs_a_path():
    with pytest.raises(ConfigError, match=r"data\.path"):
        load_config(None, ["data.source=csv"])
