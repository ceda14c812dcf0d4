"""The OpenLineage RunEvent JSON schema (spec 2-0-2) and the facets lakekit emits, for
validating received events with ``jsonschema``.

openlineage-python (1.54) does not ship the spec's JSON files: its wheel holds the Python
classes generated from them (``openlineage/client/generated``) and the facets' ``_schemaURL``
links to https://openlineage.io/spec/..., and no sdist of recent releases is on PyPI. So the
rules those files state (required fields, enums, formats) are written out here, one
definition per spec definition, and :func:`validate` checks an event against them with a
format checker. Each facet's ``_schemaURL`` must name its spec file, so a facet under the
wrong key is caught too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import jsonschema

__all__ = ["RUN_EVENT", "validate"]

_URI = {"type": "string", "format": "uri"}


def _facet(schema_file: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A facet: the base facet's fields, a ``_schemaURL`` naming ``schema_file``, ``body``."""
    return {"allOf": [{"$ref": "#/$defs/BaseFacet"},
                      {"type": "object",
                       "properties": {"_schemaURL": {"type": "string",
                                                     "pattern": f"/{schema_file}#"}}},
                      body or {"type": "object"}]}


_DEFS: dict[str, Any] = {
    "BaseFacet": {
        "type": "object",
        "properties": {"_producer": _URI, "_schemaURL": _URI},
        "required": ["_producer", "_schemaURL"],
    },
    "Run": {
        "type": "object",
        "properties": {
            "runId": {"type": "string", "format": "uuid"},
            "facets": {"type": "object",
                       "properties": {"errorMessage": {"$ref": "#/$defs/ErrorMessageRunFacet"}},
                       "additionalProperties": {"$ref": "#/$defs/BaseFacet"}},
        },
        "required": ["runId"],
    },
    "Job": {
        "type": "object",
        "properties": {"namespace": {"type": "string"}, "name": {"type": "string"},
                       "facets": {"type": "object",
                                  "additionalProperties": {"$ref": "#/$defs/BaseFacet"}}},
        "required": ["namespace", "name"],
    },
    "Dataset": {
        "type": "object",
        "properties": {
            "namespace": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "facets": {"type": "object",
                       "properties": {
                           "schema": {"$ref": "#/$defs/SchemaDatasetFacet"},
                           "version": {"$ref": "#/$defs/DatasetVersionDatasetFacet"},
                           "lifecycleStateChange": {
                               "$ref": "#/$defs/LifecycleStateChangeDatasetFacet"},
                       },
                       "additionalProperties": {"$ref": "#/$defs/BaseFacet"}},
        },
        "required": ["namespace", "name"],
    },
    "InputDataset": {"allOf": [{"$ref": "#/$defs/Dataset"}, {
        "type": "object",
        "properties": {"inputFacets": {
            "type": "object",
            "properties": {
                "dataQualityAssertions": {"$ref": "#/$defs/DataQualityAssertionsDatasetFacet"},
                "dataQualityMetrics": {"$ref": "#/$defs/DataQualityMetricsInputDatasetFacet"},
            },
            "additionalProperties": {"$ref": "#/$defs/BaseFacet"}}},
    }]},
    "OutputDataset": {"allOf": [{"$ref": "#/$defs/Dataset"}, {
        "type": "object",
        "properties": {"outputFacets": {"type": "object",
                                        "additionalProperties": {"$ref": "#/$defs/BaseFacet"}}},
    }]},
    "SchemaDatasetFacet": _facet("SchemaDatasetFacet.json", {
        "type": "object",
        "properties": {"fields": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                           "description": {"type": "string"}},
            "required": ["name"]}}},
    }),
    "DatasetVersionDatasetFacet": _facet("DatasetVersionDatasetFacet.json", {
        "type": "object", "properties": {"datasetVersion": {"type": "string"}},
        "required": ["datasetVersion"]}),
    "LifecycleStateChangeDatasetFacet": _facet("LifecycleStateChangeDatasetFacet.json", {
        "type": "object",
        "properties": {"lifecycleStateChange": {
            "enum": ["ALTER", "CREATE", "DROP", "OVERWRITE", "RENAME", "TRUNCATE"]}},
        "required": ["lifecycleStateChange"]}),
    "DataQualityAssertionsDatasetFacet": _facet("DataQualityAssertionsDatasetFacet.json", {
        "type": "object",
        "properties": {"assertions": {"type": "array", "items": {
            "type": "object",
            "properties": {"assertion": {"type": "string"}, "success": {"type": "boolean"},
                           "column": {"type": "string"}},
            "required": ["assertion", "success"]}}},
        "required": ["assertions"]}),
    "DataQualityMetricsInputDatasetFacet": _facet("DataQualityMetricsInputDatasetFacet.json", {
        "type": "object",
        "properties": {
            "rowCount": {"type": "integer"}, "bytes": {"type": "integer"},
            "fileCount": {"type": "integer"},
            "columnMetrics": {"type": "object", "additionalProperties": {
                "type": "object",
                "properties": {"nullCount": {"type": "integer"},
                               "distinctCount": {"type": "integer"},
                               "sum": {"type": "number"}, "count": {"type": "number"},
                               "min": {"type": "number"}, "max": {"type": "number"},
                               "quantiles": {"type": "object",
                                             "additionalProperties": {"type": "number"}}}}},
        },
        "required": ["columnMetrics"]}),
    "ErrorMessageRunFacet": _facet("ErrorMessageRunFacet.json", {
        "type": "object",
        "properties": {"message": {"type": "string"}, "programmingLanguage": {"type": "string"},
                       "stackTrace": {"type": "string"}},
        "required": ["message", "programmingLanguage"]}),
}

RUN_EVENT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": _DEFS,
    "type": "object",
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "run": {"$ref": "#/$defs/Run"},
        "job": {"$ref": "#/$defs/Job"},
        "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
        "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
        "producer": _URI,
        "schemaURL": _URI,
    },
    "required": ["run", "job", "eventTime", "producer", "schemaURL"],
}

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value and parsed.tzinfo is not None


@_FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    from urllib.parse import urlsplit

    return not isinstance(value, str) or bool(urlsplit(value).scheme)


_VALIDATOR = jsonschema.Draft202012Validator(RUN_EVENT, format_checker=_FORMATS)


def validate(event: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` (every problem listed) unless ``event`` is a
    valid RunEvent."""
    errors = sorted(_VALIDATOR.iter_errors(event), key=lambda e: list(e.path))
    if errors:
        raise jsonschema.ValidationError("; ".join(
            f"{'/'.join(map(str, e.path)) or '<event>'}: {e.message}" for e in errors))
