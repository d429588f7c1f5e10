# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Where backups live in S3-compatible object storage, and how to reach it."""

    DOCUMENTATION = r'''
options:
  bucket:
    description:
      - The bucket. It must exist.
    type: str
    required: true
  prefix:
    description:
      - The key prefix of all hosts' backups. A host's backups are C(<prefix>/<host>/<file name>).
    type: str
    default: nexus-backups
  host:
    description:
      - The host whose backups these are, usually C({{ inventory_hostname }}). Only objects directly
        under C(<prefix>/<host>/) are ever listed, pruned or downloaded.
    type: str
    required: true
  endpoint_url:
    description:
      - The S3 endpoint, for MinIO, Ceph, rclone and other S3-compatible stores, for example
        C(https://minio.example.com:9000). Requests use path-style addressing then.
      - Default is AWS S3 for O(region). If not set, E(AWS_ENDPOINT_URL_S3) or E(AWS_ENDPOINT_URL) is used.
    type: str
    aliases: [aws_endpoint_url, s3_url]
  region:
    description:
      - The region. If not set, E(AWS_REGION) or E(AWS_DEFAULT_REGION), then the profile's region,
        then V(us-east-1).
    type: str
    aliases: [aws_region]
  aws_access_key_id:
    description:
      - The access key. If not set, E(AWS_ACCESS_KEY_ID) (or E(AWS_ACCESS_KEY)) is used; if that is
        unset too, boto3's usual chain (O(profile), C(~/.aws/credentials), instance or task role).
      - Like every environment fallback of a module, the variable is read on the managed host.
    type: str
    aliases: [access_key, aws_access_key]
  aws_secret_access_key:
    description:
      - The secret key that goes with O(aws_access_key_id). If not set, E(AWS_SECRET_ACCESS_KEY)
        (or E(AWS_SECRET_KEY)) is used.
    type: str
    aliases: [secret_key, aws_secret_key]
  session_token:
    description:
      - A session token for temporary credentials. If not set, E(AWS_SESSION_TOKEN) is used.
    type: str
    aliases: [aws_session_token]
  profile:
    description:
      - A named profile of C(~/.aws/config) on the managed host. If not set, E(AWS_PROFILE) is used.
    type: str
    aliases: [aws_profile]
  validate_certs:
    description:
      - Validate the endpoint's TLS certificate.
    type: bool
    default: true
requirements:
  - boto3
notes:
  - Empty environment variables count as unset (AWX injects unset credential fields as empty strings).
'''
