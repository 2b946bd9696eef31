# %% [markdown]
# # A researcher's steps in Python
#
# The demo's researcher path (`sluice demo`), from a notebook or a terminal:
# search the catalog, apply for the conditional PUMS sample, wait for the
# provider's approval, estimate a job, submit it, read the release as a
# DataFrame and verify its signature offline.
#
# Needs a running server with PUMS published (README, "Five-minute tour"):
#
#     pip install ./python
#     SLUICE_URL=http://127.0.0.1:7878 SLUICE_TOKEN=<researcher token> \
#         python examples/python/researcher.py
#
# Optional: SLUICE_PUBLIC_KEY (hex; else the key dir's signing.ed25519.pub
# from SLUICE_KEY_FILE, else asked from the server) and, to play the
# provider's part too, SLUICE_PROVIDER_TOKEN (the provider approves with
# examples/access/terms.toml; otherwise this waits for them to).
# Cells are marked `# %%`, so editors open it as a notebook.

# %%
import os
from pathlib import Path

import sluice

REPO = Path(__file__).resolve().parents[2]
client = sluice.Client.from_env()
print(f"as {client.me().name} on {client.url}")

# %% [markdown]
# ## Find data

# %%
for d in client.datasets("income"):
    print(f"{d.name}: {d.title} ({d.provider}, {d.open_category})")
pums = client.dataset("pums")
print([c["name"] for c in pums.columns])
preview = client.preview("pums", limit=3)
print("synthetic rows" if preview.attrs["synthetic"] else "real rows")
print(preview)

# %% [markdown]
# ## Apply for conditional data and wait for the provider

# %%
application = client.apply(REPO / "examples" / "access" / "application.toml")
print(f"application {application.id} {application.state}, due by {application.due_at:%Y-%m-%d}")
provider_token = os.environ.get("SLUICE_PROVIDER_TOKEN")
if provider_token:
    provider = client.with_token(provider_token)
    provider.approve(application.id, REPO / "examples" / "access" / "terms.toml")
else:
    print(f"waiting for the provider: sluice application approve {application.id} --terms examples/access/terms.toml")
agreement = client.wait_for_approval(application.id)
print(f"agreement {agreement.id}: ε {agreement.epsilon:g}, purpose {agreement.purpose!r}")

# %% [markdown]
# ## Estimate, then submit
#
# The estimate reads no data and spends nothing: exact ε, the noise of each
# output, and when the outcome will be visible.

# %%
manifest = sluice.Manifest.load(REPO / "examples" / "jobs" / "income_by_sex.toml").with_agreements([agreement.id])
estimate = client.estimate(manifest)
print(f"accepted: {estimate.accepted}, ε {estimate.epsilon:g}, outcome after {estimate.expected_seconds:.1f} s")
print(estimate.to_pandas())

release = client.submit(manifest)  # follows the job; shows when its outcome is due
print(release)

# %% [markdown]
# ## The release as a DataFrame, verified
#
# Keep the platform's key from somewhere other than the server you check
# (the key dir's signing.ed25519.pub, a published copy).

# %%
key = os.environ.get("SLUICE_PUBLIC_KEY")
if not key and os.environ.get("SLUICE_KEY_FILE"):
    key = Path(os.environ["SLUICE_KEY_FILE"]).read_text().strip()
if not key:
    print("no SLUICE_PUBLIC_KEY or SLUICE_KEY_FILE: using the server's own word for its key")
    key = client.public_key().public_key_hex
release.verify(key, manifest=manifest)
frame = release.to_pandas()
print(frame.to_string(index=False))
print(f"ε spent {release.epsilon:g}; verified by key {release.verified_by}")
print("cite:", release.citation)

# %%
budget = client.budget("pums")
print(f"budget on pums: granted {budget.granted:g}, spent {budget.spent:g}, remaining {budget.remaining:g}")
