"""The feature store's REST API mounted in Ferry's server, called with boto3's sagemaker-featurestore-runtime."""

from __future__ import annotations

import time

import boto3
import httpx
import pytest
from botocore.config import Config


@pytest.fixture(scope="module")
def fs(ferry_url):
    return boto3.client("sagemaker-featurestore-runtime", endpoint_url=ferry_url, region_name="us-east-1",
                        aws_access_key_id="any", aws_secret_access_key="any", config=Config(retries={"max_attempts": 1}))


def record(applicant_id: int, income: float, t: float) -> list[dict]:
    values = {"applicant_id": applicant_id, "event_time": t, "age": 30, "employment_code": 0, "housing_code": 1,
              "income": income, "debt_ratio": 0.2, "credit_history_months": 100.0, "num_open_accounts": 3.0,
              "loan_amount": 5000.0, "age_group": "25_to_60", "employment": "salaried", "housing": "rent"}
    return [{"FeatureName": k, "ValueAsString": str(v)} for k, v in values.items()]


def test_put_and_get_record_through_ferry(fs):
    t = time.time()
    fs.put_record(FeatureGroupName="applicants", Record=record(424242, 51000.0, t))
    fs.put_record(FeatureGroupName="applicants", Record=record(424242, 1.0, t - 100))  # older: online keeps newer
    got = fs.get_record(FeatureGroupName="applicants", RecordIdentifierValueAsString="424242",
                        FeatureNames=["income", "age_group"])
    assert {f["FeatureName"]: f["ValueAsString"] for f in got["Record"]} == {"income": "51000.0", "age_group": "25_to_60"}


def test_feature_errors_are_exact_4xx(fs, ferry_url):
    with pytest.raises(fs.exceptions.ResourceNotFound):
        fs.get_record(FeatureGroupName="no-such-group", RecordIdentifierValueAsString="1")
    r = httpx.put(f"{ferry_url}/FeatureGroup/applicants", json={"Record": [{"FeatureName": "income", "ValueAsString": "x"}]})
    assert r.status_code == 400 and r.json() == {"__type": "ValidationError",
                                                  "message": "income: expected Fractional, got 'x'"}
