"""The API double's generic custom-resource store: any group/version/plural a test
registers, namespaced or cluster-scoped, with the real server's write semantics.

    api.register_resource("ipam.netplex.io", "v1alpha1", "ipblocks", namespaced=False)
    api.register_resource("", "v1", "nodes", namespaced=False)       # core group: /api/v1

Served, for each registered resource (`{prefix}` is `/apis/{group}/{version}`, or
`/api/v1` for the core group; `/namespaces/{ns}` only when namespaced):

  GET    {prefix}[/namespaces/{ns}]/{plural}[/{name}[/status]]    get, list (+watch)
  POST   {prefix}[/namespaces/{ns}]/{plural}                      create: 409 AlreadyExists
  PUT    .../{plural}/{name}[/status]    replace: 409 Conflict when metadata.resourceVersion
                                         is stale; /status changes only `status`
  PATCH  .../{plural}/{name}[/status]    merge patch (a resourceVersion in it is a precondition)
  DELETE .../{plural}/{name}             preconditions (DeleteOptions) checked: 409

Lists take labelSelector and fieldSelector (metadata.name, metadata.namespace,
spec.nodeName), `limit`; watches share the double's event log, so bookmarks-free resumes
and 410 after `compact()` behave as for pods and NADs.

`chaos(...)` makes a share of the writes to registered resources fail before they apply
(409, 500), apply and then answer 500 (the reply is lost: the client cannot tell), or
stall first, so that every retry path runs. Seeded: reproducible per test."""

from __future__ import annotations

import copy
import dataclasses
import random
import threading
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.kube.apidouble import Request, _Handler

CREATED = "2024-01-01T00:00:00Z"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclasses.dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str

    @property
    def key(self) -> str:
        """The store's name for it (also the event log's resource)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclasses.dataclass
class Chaos:
    conflict: float = 0.0  # answer 409 Conflict without applying
    error: float = 0.0  # answer 500 without applying
    lost_reply: float = 0.0  # apply, then answer 500
    stall: float = 0.0  # wait `stall_seconds`, then serve normally
    stall_seconds: float = 0.5
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


class GenericStore:
    """Mixed into ApiDouble: uses its lock (`_cond`), event log and resourceVersion."""

    _cond: threading.Condition
    _objects: dict[str, dict[tuple[str, str], dict[str, Any]]]
    _resource_version: int
    _stopping: threading.Event

    def _generic_init(self) -> None:
        self._resources: dict[str, Resource] = {}
        self._chaos: Chaos | None = None

    # -- the test's side -----------------------------------------------------------------

    def register_resource(
        self, group: str, version: str, plural: str, *, namespaced: bool = True, kind: str = ""
    ) -> Resource:
        """Serve `plural` of `group/version` (group "" is the core API under /api/v1)."""
        resource = Resource(group, version, plural, namespaced, kind or plural.rstrip("s").capitalize())
        with self._cond:
            self._resources[resource.key] = resource
            self._objects.setdefault(resource.key, {})
        return resource

    def create_object(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Seed an object (no chaos); returns what the store holds."""
        namespace = str(obj.get("metadata", {}).get("namespace", "")) if resource.namespaced else ""
        return self._generic_create(resource, namespace, copy.deepcopy(obj))

    def delete_object(self, resource: Resource, name: str, namespace: str = "") -> None:
        self._generic_delete(resource, namespace, name, {})

    def objects(self, resource: Resource) -> list[dict[str, Any]]:
        """Copies of every stored object of `resource`, by (namespace, name)."""
        with self._cond:
            return [copy.deepcopy(obj) for _, obj in sorted(self._objects[resource.key].items())]

    def get_object(self, resource: Resource, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self._cond:
            found = self._objects[resource.key].get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def chaos(
        self,
        *,
        conflict: float = 0.0,
        error: float = 0.0,
        lost_reply: float = 0.0,
        stall: float = 0.0,
        stall_seconds: float = 0.5,
        seed: int = 0,
    ) -> Chaos:
        """Fail or stall this share of writes to registered resources (0 everywhere: off)."""
        made = Chaos(conflict, error, lost_reply, stall, stall_seconds, random.Random(seed))
        with self._cond:
            self._chaos = made if (conflict or error or lost_reply or stall) else None
        return made

    # -- the server's side ----------------------------------------------------------------

    def _generic_route(self, handler: _Handler, request: Request) -> bool:
        """Serve `request` if it is for a registered resource; False otherwise."""
        from tests.kube import apidouble as double

        for resource in list(self._resources.values()):
            parsed = _match(resource, request.path)
            if parsed is None:
                continue
            namespace, name, subresource = parsed
            if name is None:
                self._serve_collection(handler, request, resource, namespace)
                return True
            self._chaos_before(request)
            lost = self._lost_reply(request)
            if request.method == "GET":
                answer = self._generic_get(resource, namespace, name)
            elif request.method == "PUT":
                answer = self._generic_replace(resource, namespace, name, _body(request), status=bool(subresource))
            elif request.method == "PATCH":
                answer = self._generic_patch(resource, namespace, name, request, status=bool(subresource))
            elif request.method == "DELETE":
                answer = self._generic_delete(resource, namespace, name, _body(request) if request.body else {})
            else:
                raise double._ApiError(405, f"method {request.method} is not supported here")
            if lost:
                raise double._ApiError(500, "injected failure after the write was applied")
            double._send(handler, 200, answer)
            return True
        return False

    def _serve_collection(self, handler: _Handler, request: Request, resource: Resource, namespace: str | None) -> None:
        from tests.kube import apidouble as double

        if request.method == "POST":
            self._chaos_before(request)
            lost = self._lost_reply(request)
            obj = _body(request)
            if resource.namespaced:
                if namespace is None:
                    raise double._ApiError(405, "create a namespaced object under its namespace")
                obj.setdefault("metadata", {})["namespace"] = namespace
            created = self._generic_create(resource, namespace or "", obj)
            if lost:
                raise double._ApiError(500, "injected failure after the write was applied")
            double._send(handler, 201, created)
            return
        if request.method != "GET":
            raise double._ApiError(405, f"method {request.method} is not supported on a collection")
        selector = double._Selector(request.query)
        if request.query.get("watch", [""])[0] in ("1", "true"):
            self._watch(handler, request, resource=resource.key, namespace=namespace, selector=selector)  # type: ignore[attr-defined]
            return
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects[resource.key].items())
                if (namespace is None or ns == namespace) and selector.matches(obj)
            ]
            version = str(self._resource_version)
        limit = int(request.query.get("limit", ["0"])[0] or 0)
        if limit:
            items = items[:limit]
        double._send(handler, 200, {
            "kind": f"{resource.kind}List", "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": version}, "items": items,
        })

    def _chaos_before(self, request: Request) -> None:
        from tests.kube import apidouble as double

        chaos = self._chaos
        if chaos is None or request.method not in WRITES:
            return
        with self._cond:
            roll = chaos.rng.random()
        if roll < chaos.stall:
            _count(chaos, "stall")
            if self._stopping.wait(chaos.stall_seconds):
                raise double._ApiError(503, "the API double is stopping")
            return
        roll -= chaos.stall
        if roll < chaos.conflict:
            _count(chaos, "conflict")
            raise double._ApiError(409, "injected conflict: the object has been modified")
        roll -= chaos.conflict
        if roll < chaos.error:
            _count(chaos, "error")
            raise double._ApiError(500, "injected failure")

    def _lost_reply(self, request: Request) -> bool:
        chaos = self._chaos
        if chaos is None or request.method not in WRITES or not chaos.lost_reply:
            return False
        with self._cond:
            lost = chaos.rng.random() < chaos.lost_reply
        if lost:
            _count(chaos, "lost_reply")
        return lost

    def _generic_get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        from tests.kube import apidouble as double

        with self._cond:
            obj = self._objects[resource.key].get((namespace, name))
            if obj is None:
                raise double._ApiError(404, f'{resource.key} "{name}" not found')
            return copy.deepcopy(obj)

    def _generic_create(self, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        from tests.kube import apidouble as double

        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or (meta.get("generateName", "") + uuid.uuid4().hex[:5])
        if not isinstance(name, str) or not name:
            raise double._ApiError(422, "metadata.name: Required value")
        meta["name"] = name
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = CREATED
        meta["generation"] = 1
        obj["apiVersion"] = resource.api_version
        obj.setdefault("kind", resource.kind)
        with self._cond:
            if (namespace, name) in self._objects[resource.key]:
                raise double._ApiError(409, f'{resource.key} "{name}" already exists')
            return self._store(resource, namespace, obj, "ADDED")

    def _generic_replace(
        self, resource: Resource, namespace: str, name: str, obj: dict[str, Any], *, status: bool
    ) -> dict[str, Any]:
        from tests.kube import apidouble as double

        with self._cond:
            old = self._objects[resource.key].get((namespace, name))
            if old is None:
                raise double._ApiError(404, f'{resource.key} "{name}" not found')
            meta = obj.get("metadata") or {}
            if meta.get("name", name) != name:
                raise double._ApiError(400, "metadata.name does not match the URL")
            version = meta.get("resourceVersion")
            if version and version != old["metadata"]["resourceVersion"]:
                raise double._ApiError(
                    409, f'Operation cannot be fulfilled on {resource.key} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            return self._store_update(resource, namespace, old, obj, status=status)

    def _generic_patch(
        self, resource: Resource, namespace: str, name: str, request: Request, *, status: bool
    ) -> dict[str, Any]:
        from tests.kube import apidouble as double

        if request.content_type not in double._PATCH_TYPES:
            raise double._ApiError(415, f"the API double does not take {request.content_type or 'no'} patches")
        patch = _body(request)
        with self._cond:
            old = self._objects[resource.key].get((namespace, name))
            if old is None:
                raise double._ApiError(404, f'{resource.key} "{name}" not found')
            version = (patch.get("metadata") or {}).get("resourceVersion")
            if version and version != old["metadata"]["resourceVersion"]:
                raise double._ApiError(409, "the object has been modified; please apply your changes")
            return self._store_update(resource, namespace, old, double._merge(old, patch), status=status)

    def _store_update(
        self, resource: Resource, namespace: str, old: dict[str, Any], new: dict[str, Any], *, status: bool
    ) -> dict[str, Any]:
        new = copy.deepcopy(new)
        if status:  # the status subresource changes status only
            kept = {key: copy.deepcopy(value) for key, value in old.items() if key != "status"}
            new = {**kept, "status": new.get("status", {})}
        elif "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        meta["generation"] = old["metadata"].get("generation", 1) + (0 if status else 1)
        new["apiVersion"] = resource.api_version
        new["kind"] = old.get("kind", resource.kind)
        return self._store(resource, namespace, new, "MODIFIED")

    def _generic_delete(
        self, resource: Resource, namespace: str, name: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        from tests.kube import apidouble as double

        preconditions = options.get("preconditions") or {}
        with self._cond:
            obj = self._objects[resource.key].get((namespace, name))
            if obj is None:
                raise double._ApiError(404, f'{resource.key} "{name}" not found')
            for key in ("resourceVersion", "uid"):
                wanted = preconditions.get(key)
                if wanted and wanted != obj["metadata"].get(key):
                    raise double._ApiError(409, f"Precondition failed: {key} in precondition: {wanted}")
            del self._objects[resource.key][(namespace, name)]
            self._resource_version += 1
            obj["metadata"]["resourceVersion"] = str(self._resource_version)
            self._log_event(resource.key, "DELETED", obj)
            return copy.deepcopy(obj)

    def _store(self, resource: Resource, namespace: str, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Caller holds `_cond`."""
        self._resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self._resource_version)
        self._objects[resource.key][(namespace, obj["metadata"]["name"])] = obj
        self._log_event(resource.key, event, obj)
        return copy.deepcopy(obj)

    def _log_event(self, key: str, event: str, obj: dict[str, Any]) -> None:
        from tests.kube import apidouble as double

        self._events.append(double._Event(self._resource_version, key, event, copy.deepcopy(obj)))  # type: ignore[attr-defined]
        self._cond.notify_all()


def _match(resource: Resource, path: str) -> tuple[str | None, str | None, str | None] | None:
    """(namespace, name, subresource) of a path under `resource`, or None."""
    if not path.startswith(resource.prefix + "/"):
        return None
    parts = [urllib.parse.unquote(part) for part in path[len(resource.prefix) + 1 :].split("/")]
    namespace: str | None = None
    if resource.namespaced and len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    if not parts or parts[0] != resource.plural or len(parts) > 3:
        return None
    if len(parts) == 3 and parts[2] != "status":
        return None
    if namespace is None and resource.namespaced and len(parts) > 1:
        return None
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else None
    return (namespace if resource.namespaced else ("" if name is not None else None)), name, subresource


def _body(request: Request) -> dict[str, Any]:
    from tests.kube import apidouble as double

    try:
        doc = request.json()
    except ValueError as exc:
        raise double._ApiError(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise double._ApiError(400, "the body must be a JSON object")
    return doc


def _count(chaos: Chaos, what: str) -> None:
    chaos.counts[what] = chaos.counts.get(what, 0) + 1


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll `predicate` until true or fail after `timeout` seconds (tests' helper)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
