# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options of every module that talks to a NEXUS server over its REST API."""

    DOCUMENTATION = r'''
options:
  url:
    description:
      - Base URL of the NEXUS server.
      - If not set, the value of the E(NEXUS_URL) environment variable is used (read on the managed
        host when the task runs, so C(environment:) on the task or play works).
    type: str
    default: http://127.0.0.1:9000
  username:
    description:
      - User to log in as (C(POST /api/v1/auth/login)); the JWT it returns is used for the run.
      - Requires O(password) (or E(NEXUS_PASSWORD)). Mutually exclusive with O(token) and O(api_key).
      - If not set, the value of the E(NEXUS_USERNAME) environment variable is used (see O(token) for
        which credential is used when several are set).
    type: str
  password:
    description:
      - Password of O(username), used only for the API login.
      - If not set, the value of the E(NEXUS_PASSWORD) environment variable is used.
      - Requires O(username) (or E(NEXUS_USERNAME)).
    type: str
  token:
    description:
      - "A JWT sent in the header C(Authorization: Bearer <token>); no login happens."
      - Mutually exclusive with O(api_key) and O(username)/O(password).
      - If not set, the value of the E(NEXUS_TOKEN) environment variable is used.
      - "Which credential is used: a credential set on the task always beats the environment; the
        environment then only completes a O(username)/O(password) pair. When the task sets none, the
        environment decides: E(NEXUS_TOKEN) first, then E(NEXUS_API_KEY), then E(NEXUS_USERNAME) and
        E(NEXUS_PASSWORD). Environment variables are read when the task runs, after its options are
        checked, so they never clash with each other or with the task's options; empty ones count as
        unset."
    type: str
  api_key:
    description:
      - An API key sent in the C(X-API-Key) header (never in the URL).
      - Mutually exclusive with O(token) and O(username)/O(password).
      - If not set, the value of the E(NEXUS_API_KEY) environment variable is used.
    type: str
  timeout:
    description:
      - Seconds to wait for the server to answer one request, for each read from the network.
      - One request (connecting, sending, and reading the whole answer) may take at most three times
        this in all, so a server that answers one byte at a time cannot hold a run.
    type: int
    default: 30
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https://) URLs.
      - If not set, the value of the E(NEXUS_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle file to verify the server's certificate with, instead of the default bundle (the one
        C(requests) uses, from C(certifi)).
    type: path
  retries:
    description:
      - How many times a request is repeated after a connection error or an HTTP 502, 503 or 504
        answer, with exponential backoff and jitter.
      - Only requests that are safe to repeat are retried. Login and the listing also repeat an
        HTTP 500 answer.
      - Reads and writes of single secrets that fail that way (or with HTTP 500) get up to this many
        more passes, after one pause per pass. A write is repeated only after a GET shows that it
        did not land, so it is never applied twice.
    type: int
    default: 3
notes:
  - The connection options can be set once for all modules of the collection that take them with
    C(module_defaults) and the action group C(group/nexus.secrets.nexus).
  - Credentials never appear in results or error messages, and neither do the secret values sent.
    Text from the server's answers is shown with them (and any long token) masked.
  - The client never asks for compressed answers and refuses them, and refuses an answer larger than
    64 MiB (a listing of well over 100,000 secrets); narrow a larger listing with a prefix.
  - Proxies are taken from the E(HTTP_PROXY), E(HTTPS_PROXY), E(ALL_PROXY) and E(NO_PROXY) environment
    variables when the task starts; only C(http://) proxies are supported (C(https://) URLs are tunnelled
    through them with C(CONNECT)).
'''
