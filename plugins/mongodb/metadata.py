"""Components, state and artifacts in ``_pinnacle_components``, ``_pinnacle_state`` and
``_pinnacle_artifacts`` (artifacts in parts well below MongoDB's 16 MB document limit)."""

from __future__ import annotations

import io
import json
import time
import typing as t

from bson.binary import Binary

from pinnacle.errors import BackendError, NotFoundError

__all__ = ["MetadataStore", "ARTIFACT_PART"]

#: Artifact bytes per document: a BSON document holds at most 16 MB.
ARTIFACT_PART = 8 * 1024 * 1024

COMPONENTS = "_pinnacle_components"
STATE = "_pinnacle_state"
ARTIFACTS = "_pinnacle_artifacts"


class MetadataStore:
    """Mixin of :class:`~pinnacle.plugins.mongodb.backend.MongoBackend` for pinnacle's metadata."""

    db: t.Any
    safe_uri: str

    def _create_metadata(self) -> None:
        self.db[COMPONENTS].create_index([("type", 1), ("identifier", 1), ("version", 1)], unique=True)
        self.db[ARTIFACTS].create_index([("sha256", 1), ("part", 1)], unique=True)

    # -- components ---------------------------------------------------------------------
    def put_component(self, type_id, identifier, version, uuid, data) -> None:
        from pymongo.errors import DuplicateKeyError

        record = {
            "type": type_id, "identifier": identifier, "version": int(version), "uuid": uuid,
            "data": json.dumps(data, sort_keys=True), "created_at": time.time(),
        }
        try:
            self.db[COMPONENTS].insert_one(record)
        except DuplicateKeyError as exc:
            raise BackendError(
                f"{type_id} {identifier!r} version {version} was stored by another process at the same "
                "time; apply it again.", exc,
            ) from exc

    def get_component(self, type_id, identifier, version=None) -> t.Optional[dict]:
        query: dict[str, t.Any] = {"type": type_id, "identifier": identifier}
        if version is not None:
            query["version"] = int(version)
        found = list(self.db[COMPONENTS].find(query, {"_id": 0}).sort("version", -1).limit(1))
        if not found:
            return None
        record = found[0]
        return {
            "type": record["type"], "identifier": record["identifier"], "version": record["version"],
            "uuid": record["uuid"], "data": json.loads(record["data"]), "created_at": record.get("created_at"),
        }

    def list_components(self, type_id=None) -> list[dict]:
        query = {} if type_id is None else {"type": type_id}
        latest: dict[tuple[str, str], dict] = {}
        for r in self.db[COMPONENTS].find(query, {"_id": 0, "type": 1, "identifier": 1, "version": 1, "uuid": 1}):
            key = (r["type"], r["identifier"])
            if key not in latest or r["version"] > latest[key]["version"]:
                latest[key] = {"type": r["type"], "identifier": r["identifier"], "version": r["version"], "uuid": r["uuid"]}
        return [latest[k] for k in sorted(latest)]

    def delete_component(self, type_id, identifier, version=None) -> None:
        which = {"type": type_id, "identifier": identifier}
        if version is not None:
            which["version"] = version
        self.db[COMPONENTS].delete_many(which)

    # -- state ---------------------------------------------------------------------------
    def get_state(self, key: str) -> t.Optional[str]:
        found = self.db[STATE].find_one({"_id": key})
        return None if found is None else found["value"]

    def set_state(self, key: str, value: t.Optional[str]) -> None:
        if value is None:
            self.db[STATE].delete_one({"_id": key})
        else:
            self.db[STATE].update_one({"_id": key}, {"$set": {"value": value}}, upsert=True)

    # -- artifacts -----------------------------------------------------------------------
    def put_artifact(self, sha256: str, data: bytes) -> None:
        from pymongo.errors import DuplicateKeyError

        if self.has_artifact(sha256):
            return
        parts = max(1, -(-len(data) // ARTIFACT_PART))
        for i in range(parts):
            piece = data[i * ARTIFACT_PART : (i + 1) * ARTIFACT_PART]
            try:  # idempotent: a crashed or concurrent writer of the same bytes left this part
                self.db[ARTIFACTS].update_one(
                    {"sha256": sha256, "part": i},
                    {"$setOnInsert": {"parts": parts, "data": Binary(piece)}},
                    upsert=True,
                )
            except DuplicateKeyError:
                pass

    def get_artifact(self, sha256: str) -> bytes:
        """The artifact's bytes, read one part per server reply (``batch_size(1)``): a reply
        then holds one part (at most ``ARTIFACT_PART`` bytes), whatever the server's own
        batching (one that does not split batches at 16 MiB would otherwise send the whole
        artifact, e.g. 90 MB, in one reply, above pymongo's 48 MB message limit)."""
        cursor = (
            self.db[ARTIFACTS]
            .find({"sha256": sha256}, {"_id": 0, "part": 1, "parts": 1, "data": 1})
            .sort("part", 1)
            .batch_size(1)
        )
        out = io.BytesIO()  # grows in place and hands its buffer over: about one copy in memory
        read, parts = 0, None
        try:
            for row in cursor:
                parts = row["parts"] if parts is None else parts
                if row["part"] != read:
                    break  # a part is missing (a crashed writer's leftovers)
                out.write(row["data"])
                read += 1
        finally:
            cursor.close()
        if not read or read != parts:
            raise NotFoundError(f"Artifact {sha256[:12]} is missing from {self.safe_uri}.")
        return out.getvalue()

    def has_artifact(self, sha256: str) -> bool:
        rows = list(self.db[ARTIFACTS].find({"sha256": sha256}, {"_id": 0, "parts": 1}))  # small: no data
        return bool(rows) and len(rows) == rows[0]["parts"]
