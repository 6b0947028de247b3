#!/bin/sh
# Dataflow worker entrypoint: puts the pseudonymisation key into the
# environment (transforms/privacy.py reads YIBAO_PSEUDONYM_KEY), then starts
# the Beam SDK harness exactly as the base image would.
set -eu
if [ -n "${YIBAO_PSEUDONYM_KEY_SECRET:-}" ] && [ -z "${YIBAO_PSEUDONYM_KEY:-}" ]; then
  YIBAO_PSEUDONYM_KEY="$(python - <<'PY'
import os
from google.cloud import secretmanager

name = os.environ["YIBAO_PSEUDONYM_KEY_SECRET"]
payload = secretmanager.SecretManagerServiceClient().access_secret_version(name=name).payload
print(payload.data.decode("utf-8"), end="")
PY
)"
  export YIBAO_PSEUDONYM_KEY
fi
exec /opt/apache/beam/boot "$@"
