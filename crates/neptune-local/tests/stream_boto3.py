"""Drives neptune-local's change stream through boto3's `neptunedata` client, unchanged, and
through plain HTTP for what boto3 cannot ask (gzip, malformed parameters). Prints what it got
as one JSON document; the Rust test (tests/stream.rs) makes the assertions.

Usage: stream_boto3.py ENDPOINT EXPIRED_ENDPOINT
"""

import gzip
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import boto3
import botocore.exceptions


def client(endpoint: str) -> Any:
    return boto3.client(
        "neptunedata",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def call(neptune: Any, **params: Any) -> dict:
    """A response without its HTTP metadata, or the error code and message."""
    try:
        out = neptune.get_propertygraph_stream(**params)
    except botocore.exceptions.ClientError as e:
        return {
            "error": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message", ""),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }
    out.pop("ResponseMetadata", None)
    return out


def raw(endpoint: str, query: str, accept_gzip: bool, path: str = "/propertygraph/stream") -> dict:
    request = urllib.request.Request(f"{endpoint}{path}?{query}")
    if accept_gzip:
        request.add_header("Accept-Encoding", "gzip")
    try:
        with urllib.request.urlopen(request) as response:
            body = response.read()
            encoding = response.headers.get("Content-Encoding")
            if encoding == "gzip":
                body = gzip.decompress(body)
            return {"status": response.status, "encoding": encoding, "body": json.loads(body)}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "encoding": None, "body": json.loads(e.read())}


def main() -> None:
    endpoint, expired_endpoint = sys.argv[1], sys.argv[2]
    neptune = client(endpoint)
    everything = call(neptune, iteratorType="TRIM_HORIZON", limit=100000)
    head = everything["lastEventId"]

    # Paging: two records at a time, each page after the last one's lastEventId.
    pages = [call(neptune, iteratorType="TRIM_HORIZON", limit=2)]
    while "error" not in pages[-1]:
        last = pages[-1]["lastEventId"]
        pages.append(
            call(
                neptune,
                iteratorType="AFTER_SEQUENCE_NUMBER",
                commitNum=last["commitNum"],
                opNum=last["opNum"],
                limit=2,
            )
        )
    third = everything["records"][2]["eventId"]
    result = {
        "all": everything,
        "pages": pages,
        "at_third": call(
            neptune,
            iteratorType="AT_SEQUENCE_NUMBER",
            commitNum=third["commitNum"],
            opNum=third["opNum"],
            limit=3,
        ),
        "latest": call(neptune, iteratorType="LATEST"),
        "future": call(
            neptune, iteratorType="AT_SEQUENCE_NUMBER", commitNum=head["commitNum"] + 1
        ),
        "gzip": raw(endpoint, "iteratorType=TRIM_HORIZON&limit=100000", True),
        "plain": raw(endpoint, "iteratorType=TRIM_HORIZON&limit=100000", False),
        "alias": raw(endpoint, "iteratorType=TRIM_HORIZON&limit=100000", False, "/pg/stream"),
        "bad_limit": raw(endpoint, "iteratorType=TRIM_HORIZON&limit=0", False),
        "bad_iterator": raw(endpoint, "iteratorType=SIDEWAYS", False),
        "no_commit": raw(endpoint, "iteratorType=AT_SEQUENCE_NUMBER", False),
        "expired": call(client(expired_endpoint), iteratorType="AT_SEQUENCE_NUMBER", commitNum=1),
        "expired_horizon": call(client(expired_endpoint), iteratorType="TRIM_HORIZON", limit=100),
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
