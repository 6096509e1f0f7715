"""tune(backend="kubernetes") and KatibClient against the real test API server.

The controller (katib.backends.kubernetes) runs on threads of this process and the test
kubelet runs the trial pods as local processes, so a tune() experiment goes all the way:
Experiment -> Trials -> Jobs -> pods running ``python3 -c <runner>`` -> metrics from the
pod logs -> the TuneResult.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

import katib
from katib import search
from katib.errors import AlreadyExistsError, NotFoundError, ValidationError
from katib.sdk import Trainer
from katib.sdk.client import KatibClient

pytestmark = pytest.mark.k8s


@pytest.fixture
def client(k8s_control_plane: Any, katib_crds: None, k8s_namespace: str) -> Iterator[KatibClient]:
    c = KatibClient(config_file=str(k8s_control_plane.kubeconfig_path), namespace=k8s_namespace)
    try:
        yield c
    finally:
        c.close()


def typed_objective(p: dict[str, Any]) -> dict[str, float]:
    """Shipped as source: self-contained. Raises (failing the trial) unless typed."""
    import json

    kinds = {k: type(v).__name__ for k, v in sorted(p.items())}
    if kinds != {"epochs": "int", "lr": "float", "opt": "str", "units": "int"}:
        raise TypeError(f"untyped parameters: {kinds}")
    print("kinds " + json.dumps(kinds))
    import katib  # the runner's stand-in when the image lacks the package; here the real one

    for step in range(1, p["epochs"] + 1):
        katib.report_metrics({"loss": p["lr"] * p["units"] / step})
    return {"loss": p["lr"] * p["units"] / p["epochs"]}


PARAMETERS = {"lr": search.double(0.01, 0.1), "units": search.int(1, 4), "opt": search.categorical(["adam", "s d"]),
              "epochs": 2}


def test_tune_runs_end_to_end_through_the_controller(client: KatibClient, k8s_control_plane: Any) -> None:
    from katib.backends.kubernetes.client import Kube, load_client
    from tests.kubernetes.support import running_controller

    kube = Kube(load_client(str(k8s_control_plane.kubeconfig_path)))
    try:
        with running_controller(kube, client.namespace):
            result = katib.tune(typed_objective, PARAMETERS, name="tune-k8s", backend="kubernetes", client=client,
                                wait=True, objective_metric_name="loss", objective_type="minimize",
                                max_trial_count=3, parallel_trial_count=2, retain_trials=True, progress=False)
    finally:
        kube.close()
    assert isinstance(result, katib.TuneResult) and result.namespace == client.namespace
    assert result.state == "Succeeded", result
    assert [t.state for t in result.trials] == ["Succeeded"] * 3, [t.error for t in result.trials]
    for t in result.trials:
        assert isinstance(t.params["units"], int) and isinstance(t.params["lr"], float)
        assert t.metrics["loss"] == pytest.approx(t.params["lr"] * t.params["units"] / 2, rel=1e-6)
    assert result.best_value == min(t.metrics["loss"] for t in result.trials)
    lines = list(client.get_job_logs("tune-k8s", result.trials[0].name))
    assert 'kinds {"epochs": "int", "lr": "float", "opt": "str", "units": "int"}' in lines
    assert any(line.startswith("step=2 loss=") for line in lines)


def test_tune_creates_a_valid_trainjob_experiment(client: KatibClient) -> None:
    name = katib.tune(typed_objective, PARAMETERS, name="tune-trainer", backend="kubernetes", client=client,
                      trainer=Trainer(runtime="torch-distributed", num_nodes=2,
                                      resources_per_node={"cpu": 2, "gpu": 1}),
                      env_per_trial={"A": "1"}, base_image="python:3.11", packages_to_install=["numpy"],
                      objective_metric_name="loss", max_trial_count=2, progress=False)
    assert name == "tune-trainer"
    exp = client.get_experiment(name)
    template = exp.spec.trial_template
    assert template is not None and template.primary_container_name == "node"
    spec = template.trial_spec
    assert spec["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and spec["kind"] == "TrainJob"
    trainer = spec["spec"]["trainer"]
    assert spec["spec"]["runtimeRef"] == {"name": "torch-distributed"} and trainer["numNodes"] == 2
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": "2", "nvidia.com/gpu": "1"}
    assert trainer["image"] == "python:3.11" and {"name": "A", "value": "1"} in trainer["env"]
    command = trainer["command"]
    assert command[:3] == ["python3", "-u", "-c"] and command[command.index("--pip") + 1] == "numpy"
    assert command[-6:] == ["lr", "${trialParameters.lr}", "units", "${trialParameters.units}",
                            "opt", "${trialParameters.opt}"]


def test_katib_client_manages_experiments_on_the_api_server(client: KatibClient) -> None:
    name = katib.tune(typed_objective, PARAMETERS, name="managed", backend="kubernetes", client=client,
                      objective_metric_name="loss", max_trial_count=4, parallel_trial_count=2, progress=False)
    exp = client.get_experiment(name)
    assert exp.metadata.uid and exp.spec.max_trial_count == 4
    assert [e.name for e in client.list_experiments()] == ["managed"]
    assert client.list_trials(name) == [] and client.get_optimal_hyperparameters(name) is None

    # creating it again: the API server's own message, not a bare RuntimeError
    with pytest.raises(AlreadyExistsError, match='experiments.kubeflow.org "managed" already exists'):
        client.create_experiment(exp)
    # a broken experiment is refused before it is sent, naming the field
    broken = exp.copy()
    broken.metadata.name = "broken"
    broken.spec.parameters[0].feasible_space.min = "5"
    with pytest.raises(ValidationError, match=r"spec.parameters\[0\].feasibleSpace.min: min \(5\) must be below"):
        client.create_experiment(broken)
    # what only the server refuses keeps the server's message
    with pytest.raises(ValidationError, match="parallelTrialCount"):
        client._kube.patch("experiments", name, client.namespace, {"spec": {"parallelTrialCount": "many"}})

    edited = client.edit_experiment_budget(name, max_trial_count=6, parallel_trial_count=3)
    assert (edited.spec.max_trial_count, edited.spec.parallel_trial_count) == (6, 3)
    assert client.get_experiment(name).spec.max_trial_count == 6
    with pytest.raises(ValidationError, match="spec.parallelTrialCount"):
        client.edit_experiment_budget(name, parallel_trial_count=0)

    client.delete_experiment(name)
    with pytest.raises(NotFoundError, match="not found"):
        client.get_experiment(name)
