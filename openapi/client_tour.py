"""Drives one engagement through CB selection and stage 1 with a client generated from
openapi/openapi.json by openapi-python-client (see openapi/contract.sh, which generates the client,
starts the server and runs this). Each step uses the token of the role that may take it.

Environment: CERTFLOW_URL (the server), CERTFLOW_BIN (the certflow command, to mint tokens).
"""

import csv
import datetime
import os
import subprocess
import sys
from pathlib import Path

from certflow_client import AuthenticatedClient
from certflow_client.api.audits import create_audit
from certflow_client.api.certification_bodies import create_certification_body
from certflow_client.api.engagements import create_engagement, get_engagement, post_engagement_event
from certflow_client.api.organizations import create_organization
from certflow_client.api.proposals import create_proposal, list_proposals, select_proposal
from certflow_client.api.stage1 import get_stage1_readiness, put_document, put_statement_of_applicability
from certflow_client.models import (
    AuditKind,
    AuditRequest,
    CertificationBodyRequest,
    DocumentRequest,
    EngagementRequest,
    OrganizationRequest,
    ProposalRequest,
    RecordStage1OutcomeEvent,
    RecordStage1OutcomeEventEvent,
    RequiredDocument,
    SignEngagementLetterEvent,
    SignEngagementLetterEventEvent,
    SoaEntryDto,
    SoaRequest,
    Stage1Outcome,
)

URL = os.environ["CERTFLOW_URL"]
BIN = os.environ["CERTFLOW_BIN"]
ROOT = Path(__file__).resolve().parent.parent


def client_as(*token_args: str) -> AuthenticatedClient:
    token = subprocess.run([BIN, "token", *token_args], check=True, capture_output=True, text=True).stdout.strip()
    return AuthenticatedClient(base_url=URL, token=token, raise_on_unexpected_status=True)


def expect(response, status: int):
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content!r}")
    return response.parsed


admin = client_as("--role", "admin", "--sub", "ops@certflow.example")
organization = expect(
    create_organization.sync_detailed(
        client=admin,
        body=OrganizationRequest(
            legal_name="Acme Data Ltd",
            isms_scope="SaaS platform, London",
            persons=120,
            isms_manager_email="isms@acme.example",
            executive_email="ceo@acme.example",
        ),
    ),
    201,
)
body = expect(
    create_certification_body.sync_detailed(
        client=admin,
        body=CertificationBodyRequest(
            name="Trusted CB", accredited=True, accreditation_body="UKAS", coordinator_email="coordinator@cb.example"
        ),
    ),
    201,
)
client = client_as("--role", "client_manager", "--org", str(organization.id), "--sub", "isms@acme.example")
coordinator = client_as("--role", "coordinator", "--cb", str(body.id), "--sub", "coordinator@cb.example")
auditor = client_as("--role", "auditor", "--cb", str(body.id), "--sub", "lead@cb.example")
today = datetime.date.today()

# CB selection: the client records the body's proposal, compares it with the audit-time estimate,
# selects it and signs the engagement letter.
engagement = expect(
    create_engagement.sync_detailed(
        client=client,
        body=EngagementRequest(organization_id=organization.id, manager_email="isms@acme.example"),
        idempotency_key=f"client-tour-{organization.id}",
    ),
    201,
)
proposal = expect(
    create_proposal.sync_detailed(
        engagement.id,
        client=client,
        body=ProposalRequest(certification_body_id=body.id, price_minor=1_450_000, currency="GBP", audit_days=12.0),
    ),
    201,
)
comparison = expect(list_proposals.sync_detailed(engagement.id, client=coordinator), 200)
assert comparison.audit_time_estimate.initial_days > 0, comparison
expect(select_proposal.sync_detailed(engagement.id, proposal.id, client=client), 200)
signed = expect(
    post_engagement_event.sync_detailed(
        engagement.id,
        client=client,
        body=SignEngagementLetterEvent(event=SignEngagementLetterEventEvent.SIGN_ENGAGEMENT_LETTER, signed_on=today),
    ),
    200,
)
assert signed.state.value == "stage1", signed.state

# Stage 1: the body plans the audit, the client submits the documents and the Statement of
# Applicability, the auditor finds it ready.
stage1 = expect(
    create_audit.sync_detailed(
        engagement.id,
        client=coordinator,
        body=AuditRequest(kind=AuditKind.STAGE1, first_day=today, last_day=today, lead_auditor="lead@cb.example"),
    ),
    201,
)
for kind in RequiredDocument:
    expect(
        put_document.sync_detailed(
            engagement.id, kind, client=client, body=DocumentRequest(reference=f"dms://isms/{kind.value}")
        ),
        200,
    )
with open(ROOT / "entities" / "data" / "annex_a_2022.csv", newline="") as controls:
    entries = [SoaEntryDto(control=row["control"], applicable=True) for row in csv.DictReader(controls)]
expect(put_statement_of_applicability.sync_detailed(engagement.id, client=client, body=SoaRequest(entries=entries)), 200)
readiness = expect(get_stage1_readiness.sync_detailed(engagement.id, client=auditor), 200)
assert readiness.ready, readiness
ready = expect(
    post_engagement_event.sync_detailed(
        engagement.id,
        client=auditor,
        body=RecordStage1OutcomeEvent(
            event=RecordStage1OutcomeEventEvent.RECORD_STAGE1_OUTCOME, audit_id=stage1.id, outcome=Stage1Outcome.READY
        ),
    ),
    200,
)
final = expect(get_engagement.sync_detailed(engagement.id, client=client), 200)
assert final.state.value == "stage2" and ready.state.value == "stage2", final.state
print(f"client tour: engagement {engagement.id} went through CB selection and stage 1 to {final.state.value}")

# The contract run fuzzes these records next (openapi/schemathesis.toml).
if "CONTRACT_IDS" in os.environ:
    with open(os.environ["CONTRACT_IDS"], "w") as ids:
        for name, value in [
            ("CONTRACT_ENGAGEMENT", engagement.id),
            ("CONTRACT_ORGANIZATION", organization.id),
            ("CONTRACT_CERTIFICATION_BODY", body.id),
            ("CONTRACT_AUDIT", stage1.id),
            ("CONTRACT_PROPOSAL", proposal.id),
        ]:
            ids.write(f"export {name}={value}\n")
