"""`ocirt features`: valid against the schema and true of this host."""

from __future__ import annotations

import json
import subprocess

from ocirt import validate


def test_features_document_is_valid_and_truthful(ocirt_bin: str) -> None:
    out = subprocess.run([ocirt_bin, "features"], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    validate.validate_against(doc, "features-schema.json", "features")
    assert doc["ociVersionMax"] == "1.3.0"
    assert set(doc["hooks"]) == {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
    }  # fmt: skip
    assert {"rbind", "rro", "nosymfollow", "rprivate"} <= set(doc["mountOptions"])
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert len(doc["linux"]["capabilities"]) == int(f.read()) + 1
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert doc["linux"]["cgroup"]["v1"] == (" - cgroup " in mounts)
    assert doc["linux"]["cgroup"]["v2"] == (" - cgroup2 " in mounts)
