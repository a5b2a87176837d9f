"MLflow logging of a training run into a local file store (the `[mlflow]` extra; skipped without mlflow)."
import json
from pathlib import Path

import pytest

from poselab.train import RunConfig, train

mlflow = pytest.importorskip("mlflow", reason="logger='mlflow' needs the [mlflow] extra: pip install 'poselab[mlflow]'")


@pytest.mark.slow
def test_mlflow_file_store_gets_params_metrics_and_pictures(data_root, tmp_path, monkeypatch):
    # MLflow 3 refuses its file store unless asked for it explicitly
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "mlruns"
    cfg = RunConfig(data_root=str(data_root), synthetic_train=16, synthetic_val=8, output_dir=str(tmp_path / "runs"),
                    input_size=(64, 64), batch_size=4, epochs=1, limit_batches=2, limit_val=4, workers=0,
                    logger="mlflow", mlflow_uri=store.as_uri(), progress=False, log_images=True, flip_test=False,
                    model_kwargs={"deconv_filters": [32, 32, 32]}, run_name="mlflow_tiny")
    out = train(cfg)
    client = mlflow.tracking.MlflowClient(store.as_uri())
    exp = client.get_experiment_by_name("poselab")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "mlflow_tiny" and run.info.status == "FINISHED"
    assert run.data.params["task"] == "topdown" and run.data.params["batch_size"] == "4"
    loss = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in loss] == [2] and loss[0].value == pytest.approx(out["history"]["loss"][-1])
    (ap,) = client.get_metric_history(run.info.run_id, "val_AP")
    assert ap.step == 2 and ap.value == pytest.approx(out["final"]["AP"])
    pictures = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert pictures == ["val_predictions_0000002.png"]
    png = Path(run.info.artifact_uri.removeprefix("file://")) / pictures[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "runs/mlflow_tiny/metrics.json").read_text())["final"]["AP"] == out["final"]["AP"]
