#!/usr/bin/env python3
"""A strict Redfish emulator that serves recorded vendor trees, with switchable vendor quirks.

Strict where real BMCs are strict, so a driver that works here is not relying on leniency:
  - @Redfish.AllowableValues are enforced (boot properties, ResetType inline or via
    ActionInfo); unknown and read-only properties are refused with 400 and a Base
    @Message.ExtendedInfo naming them (MessageArgs + RelatedProperties);
  - every resource has an ETag (header and @odata.etag); If-Match is checked (412);
  - sessions: POST to the collection named by the service root's Links.Sessions, then
    X-Auth-Token; DELETE of a session; basic auth as well unless turned off;
  - ComputerSystem.Reset only at the advertised target, and it changes PowerState; a power-on
    or restart consumes a "Once" boot override and records the boot it caused.

Quirks (documented vendor behaviours), switchable per BMC:
  mode_read_only          iLO 5: BootSourceOverrideMode in a PATCH -> 400 PropertyNotWritable
                          (community.general#3509)
  mode_alone_only         iDRAC 8 (13G): the mode with other boot properties -> 400 SYS410
                          naming it; alone it is accepted (community.general#5091)
  mode_reset_unless_sent  Supermicro: a boot PATCH without the mode resets it to Legacy
                          (DMTF Redfishtool#106)
  require_if_match        AMI MegaRAC (Gigabyte, Lenovo SR655): PATCH without If-Match -> 428
                          (gofish#171, ansible#56150)
  etag_in_body_only       AMI: no ETag header, only @odata.etag
  lenient_patch           unknown properties are accepted and ignored (how a BMC without a
                          boot override "accepts" one)
  session_no_token        login answers 201 + Location but no X-Auth-Token
  sessions_at_root        the sessions collection lives at /redfish/v1/Sessions, named only by
                          Links.Sessions (the SessionService does not link it)
  no_basic_auth           basic authentication refused (sessions only)
  power_conflict          On when on / ForceOff when off -> 409 PSU501/PSU502 (iDRAC,
                          dellemc-openmanage-ansible-modules#132); a restart when off -> 400
                          InvalidOperationForSystemState (iLO, goldyfruit/ansible-ilo#1)
  error_in_200            refusals answered 200 with the error in the body (iDRAC 8 firmware,
                          community.general#5091)
  refuse_target:<T>       the target T is listed but refused with 400 (e.g. PXE disabled)

Usage:
  redfish_emulator.py --tree TREE.json [--quirk Q ...] [--set JSON] --user U --password P
                      [--fleet N --ports K] [--port P]
Prints "READY <port> [<port> ...]" on stdout once listening (127.0.0.1 only).
Control endpoints (test harness only, same credentials): GET /_emulator/state,
POST /_emulator/clear-log, GET /_emulator/stats.
"""

import argparse
import asyncio
import base64
import copy
import json
import urllib.parse
import secrets
import sys

ROOT = "/redfish/v1/"
BOOT_WRITABLE = {
    "BootSourceOverrideTarget",
    "BootSourceOverrideEnabled",
    "BootSourceOverrideMode",
    "UefiTargetBootSourceOverride",
    "HttpBootUri",
    "BootNext",
    "BootOrder",
}
STANDARD = {
    "BootSourceOverrideEnabled": ["Disabled", "Once", "Continuous"],
    "BootSourceOverrideMode": ["Legacy", "UEFI"],
}
RESET_TYPES = [
    "On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi",
    "ForceOn", "PushPowerButton", "PowerCycle", "Suspend", "Pause", "Resume",
]
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 412: "Precondition Failed", 428: "Precondition Required",
           500: "Internal Server Error"}


def norm(path):
    path = path.split("?", 1)[0]
    if path in ("/redfish/v1", "/redfish/v1/", "/redfish", "/redfish/"):
        return ROOT
    return path.rstrip("/") or "/"


def expand_of(raw_path):
    """The $expand query parameter of a request path, if any."""
    query = urllib.parse.urlsplit(raw_path).query
    values = urllib.parse.parse_qs(query).get("$expand")
    return values[0] if values else None


def error(status, message_id, message, args=(), related=()):
    info = {"@odata.type": "#Message.v1_1_1.Message", "MessageId": message_id,
            "Message": message, "MessageArgs": list(args), "Severity": "Warning",
            "RelatedProperties": list(related)}
    body = {"error": {"code": "Base.1.8.GeneralError",
                      "message": "A general error has occurred. See ExtendedInfo for more information.",
                      "@Message.ExtendedInfo": [info]}}
    return status, {}, body


class Refused(Exception):
    def __init__(self, reply):
        super().__init__(reply[2]["error"]["@Message.ExtendedInfo"][0]["Message"])
        self.reply = reply


class Emulator:
    """One process: one or many ports, one tree, N systems cloned from the tree's system."""

    def __init__(self, tree, quirks, user, password, fleet=0):
        self.quirks = set(q for q in quirks if not q.startswith("refuse_target:"))
        self.refused_targets = {q.split(":", 1)[1] for q in quirks if q.startswith("refuse_target:")}
        self.user, self.password = user, password
        self.docs = {norm(k): v for k, v in tree.items() if k.startswith("/")}
        root = self.docs[ROOT]
        members = self.docs["/redfish/v1/Systems"]["Members"]
        self.template = norm(members[0]["@odata.id"]) if len(members) == 1 else None
        if self.template is None:
            # A tree with several systems: the template is the one with a Boot or Actions.
            cands = [norm(m["@odata.id"]) for m in members if norm(m["@odata.id"]) in self.docs]
            self.template = cands[0]
        self.sessions_coll = norm(root.get("Links", {}).get("Sessions", {}).get("@odata.id", "")) or None
        if "sessions_at_root" in self.quirks and self.sessions_coll:
            coll = self.docs.pop(self.sessions_coll)
            self.sessions_coll = "/redfish/v1/Sessions"
            coll["@odata.id"] = self.sessions_coll
            self.docs[self.sessions_coll] = coll
            root.setdefault("Links", {})["Sessions"] = {"@odata.id": self.sessions_coll}
            ss = self.docs.get("/redfish/v1/SessionService")
            if ss:
                ss.pop("Sessions", None)
        self.fleet = fleet
        if fleet:
            self.systems = [f"/redfish/v1/Systems/{fleet_uuid(i)}" for i in range(fleet)]
            self.index = {p: i for i, p in enumerate(self.systems)}
        else:
            self.systems = [self.template]
            self.index = {self.template: None}
        self.overlay = {}   # (system, path) -> doc written by a PATCH or a reset
        self.versions = {}  # (system, path) -> int
        self.served = {}    # (system, path) -> (version, JSON bytes) of the last GET
        self.tokens = {}    # token -> session path
        self.session_docs = {}
        self.next_session = 0
        self.log = []
        self.boots = []
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.keep_log = not fleet

    # --- documents ---------------------------------------------------------------

    def locate(self, path):
        """(system, template path) for a path below a system, else (None, path)."""
        parts = path.split("/")
        if len(parts) >= 5 and parts[3] == "Systems":
            sysp = "/".join(parts[:5])
            if sysp in self.index:
                return sysp, self.template + path[len(sysp):]
        return None, path

    def render(self, system, tpath):
        key = (system, tpath)
        if key in self.overlay:
            return self.overlay[key]
        doc = self.docs.get(tpath)
        if doc is None:
            return None
        if system is None or not self.fleet or system == self.template:
            return doc
        i = self.index[system]
        text = json.dumps(doc).replace(self.template, system)
        doc = json.loads(text)
        if tpath == self.template:
            doc["UUID"] = fleet_uuid(i)
            doc["Id"] = system.rsplit("/", 1)[1]
            doc["PowerState"] = "Off"
        for k in ("MACAddress", "PermanentMACAddress"):
            if k in doc:
                doc[k] = fleet_mac(i, tpath)
        return doc

    def writable_doc(self, system, tpath):
        key = (system, tpath)
        if key not in self.overlay:
            self.overlay[key] = copy.deepcopy(self.render(system, tpath))
        return self.overlay[key]

    def etag(self, system, tpath):
        return f'W/"{self.versions.get((system, tpath), 1)}"'

    def bump(self, system, tpath):
        self.versions[(system, tpath)] = self.versions.get((system, tpath), 1) + 1

    # --- requests ----------------------------------------------------------------

    def auth_of(self, headers):
        tok = headers.get("x-auth-token")
        if tok is not None:
            return "token" if tok in self.tokens else "bad-token"
        a = headers.get("authorization", "")
        if a.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(a[6:]).decode().partition(":")
            except Exception:
                return "bad-basic"
            ok = user == self.user and pw == self.password
            if ok and "no_basic_auth" in self.quirks:
                return "basic-refused"
            return "basic" if ok else "bad-basic"
        return "none"

    def handle(self, method, raw_path, headers, body_bytes):
        self.requests += 1
        path = norm(raw_path)
        try:
            body = json.loads(body_bytes) if body_bytes else None
        except ValueError:
            body = "<not json>"
        auth = self.auth_of(headers)
        if path.startswith("/_emulator/"):
            reply = self.control(method, path, auth)
        else:
            reply = self.route(method, path, headers, body, auth, expand_of(raw_path))
        if self.keep_log and not path.startswith("/_emulator/"):
            logged = copy.deepcopy(body) if isinstance(body, dict) else body
            if isinstance(logged, dict) and "Password" in logged:
                logged["Password"] = "<present>"
            self.log.append({"method": method, "path": path, "auth": auth, "body": logged,
                             "if_match": headers.get("if-match"), "status": reply[0]})
        return reply

    def control(self, method, path, auth):
        if auth not in ("basic", "token", "basic-refused"):
            return error(401, "Base.1.8.NoValidSession", "control needs the BMC credentials")
        if path == "/_emulator/state" and method == "GET":
            docs = {}
            for sysp in self.systems[:1]:
                for tp in self.docs:
                    if tp.startswith(self.template):
                        docs[sysp + tp[len(self.template):]] = self.render(sysp, tp)
            return 200, {}, {"sessions": sorted(self.session_docs), "log": self.log,
                             "boots": self.boots, "docs": docs, "requests": self.requests}
        if path == "/_emulator/clear-log" and method == "POST":
            self.log = []
            return 204, {}, None
        if path == "/_emulator/stats" and method == "GET":
            return 200, {}, {"requests": self.requests, "max_in_flight": self.max_in_flight,
                             "sessions": len(self.session_docs)}
        return error(404, "Base.1.8.ResourceMissingAtURI", f"no control endpoint {path}")

    def get_expanded(self, system, tpath, expand):
        """DSP0266 $expand, one level of collection members, as the root's
        ProtocolFeaturesSupported.ExpandQuery allows (else 400 QueryNotSupported)."""
        features = self.docs[ROOT].get("ProtocolFeaturesSupported", {}).get("ExpandQuery", {})
        kind = expand.split("(", 1)[0]
        allowed = {".": "NoLinks", "*": "ExpandAll", "~": "Links"}.get(kind)
        if allowed is None or not features.get(allowed):
            return error(400, "Base.1.8.QueryNotSupported",
                         f"Querying with $expand={expand} is not supported by the implementation.")
        status, headers, body = self.get(system, tpath)
        if status != 200:
            return status, headers, body
        doc = json.loads(body)
        members = []
        for m in doc.get("Members", []):
            msys, mpath = self.locate(norm(m.get("@odata.id", "")))
            members.append(self.render(msys, mpath) or m)
        if "Members" in doc:
            doc["Members"] = members
        return status, headers, doc

    def route(self, method, path, headers, body, auth, expand=None):
        if path == ROOT and method == "GET":
            return self.get(None, ROOT)
        if self.sessions_coll and path == self.sessions_coll and method == "POST":
            return self.login(body)
        if auth not in ("basic", "token"):
            return error(401, "Base.1.8.NoValidSession",
                         "There is no valid session established with the implementation.")
        if method == "DELETE":
            if path in self.session_docs:
                doc = self.session_docs.pop(path)
                self.tokens.pop(doc["_token"], None)
                coll = self.docs[self.sessions_coll]
                coll["Members"] = [m for m in coll["Members"] if m["@odata.id"] != path]
                coll["Members@odata.count"] = len(coll["Members"])
                return 204, {}, None
            return error(405, "Base.1.8.OperationNotAllowed", f"DELETE not allowed on {path}")
        system, tpath = self.locate(path)
        if method == "GET":
            if path in self.session_docs:
                return 200, {}, {k: v for k, v in self.session_docs[path].items() if k != "_token"}
            if expand is not None:
                return self.get_expanded(system, tpath, expand)
            return self.get(system, tpath)
        if method == "PATCH":
            return self.patch(system, tpath, path, headers, body)
        if method == "POST":
            return self.post(system, tpath, path, body)
        return error(405, "Base.1.8.OperationNotAllowed", f"{method} not allowed")

    def get(self, system, tpath):
        key = (system, tpath)
        version = self.versions.get(key, 1)
        etag = self.etag(system, tpath)
        headers = {} if "etag_in_body_only" in self.quirks else {"ETag": etag}
        cached = self.served.get(key)
        if cached is not None and cached[0] == version:
            return 200, headers, cached[1]
        doc = self.render(system, tpath)
        if doc is None:
            return error(404, "Base.1.8.ResourceMissingAtURI", f"The resource at the URI {tpath} was not found.")
        doc = dict(doc)
        doc["@odata.etag"] = etag
        body = json.dumps(doc).encode()
        if system is not None:
            self.served[key] = (version, body)
        return 200, headers, body

    def login(self, body):
        if not isinstance(body, dict) or body.get("UserName") != self.user or body.get("Password") != self.password:
            return error(401, "Base.1.8.NoValidSession", "Invalid username or password.")
        self.next_session += 1
        sid = f"{self.next_session}"
        path = f"{self.sessions_coll}/{sid}"
        token = secrets.token_hex(16)
        self.tokens[token] = path
        doc = {"@odata.id": path, "@odata.type": "#Session.v1_6_0.Session", "Id": sid,
               "Name": "User Session", "UserName": self.user, "_token": token}
        self.session_docs[path] = doc
        coll = self.docs[self.sessions_coll]
        coll.setdefault("Members", []).append({"@odata.id": path})
        coll["Members@odata.count"] = len(coll["Members"])
        headers = {"Location": path}
        if "session_no_token" not in self.quirks:
            headers["X-Auth-Token"] = token
        return 201, headers, {k: v for k, v in doc.items() if k != "_token"}

    def precondition(self, system, tpath, headers):
        if_match = headers.get("if-match")
        current = self.etag(system, tpath)
        if if_match is not None:
            tags = [t.strip() for t in if_match.split(",")]
            if "*" not in tags and current not in tags:
                return error(412, "Base.1.8.PreconditionFailed",
                             "The ETag supplied did not match the ETag required to change this resource.")
        elif "require_if_match" in self.quirks:
            return 428, {}, {"error": {"code": "Ami.1.0.PreconditionHeaderMissing",
                             "message": "The request did not provide the required precondition, such as an If-Match or If-None-Match header.",
                             "@Message.ExtendedInfo": [{"MessageId": "Ami.1.0.PreconditionHeaderMissing",
                                                        "Message": "The request did not provide the required precondition, such as an If-Match or If-None-Match header.",
                                                        "Severity": "Critical"}]}}
        return None

    def refuse(self, reply):
        if "error_in_200" in self.quirks and reply[0] == 400:
            return 200, reply[1], reply[2]
        return reply

    def patch(self, system, tpath, path, headers, body):
        doc = self.render(system, tpath)
        if doc is None:
            return error(404, "Base.1.8.ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        pre = self.precondition(system, tpath, headers)
        if pre:
            return pre
        if not isinstance(body, dict):
            return error(400, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
        try:
            if system is not None and tpath == self.template:
                changes = self.check_system_patch(doc, body)
                target = self.writable_doc(system, tpath)
                boot = target.setdefault("Boot", {})
                boot.update(changes)
                if "mode_reset_unless_sent" in self.quirks and changes and "BootSourceOverrideMode" not in changes:
                    boot["BootSourceOverrideMode"] = "Legacy"
            elif doc.get("@odata.type", "").startswith("#SecureBoot."):
                for k, v in body.items():
                    if k != "SecureBootEnable":
                        raise Refused(error(400, "Base.1.8.PropertyNotWritable",
                                            f"The property {k} is a read only property and cannot be assigned a value.", [k], [f"#/{k}"]))
                    if not isinstance(v, bool):
                        raise Refused(error(400, "Base.1.8.PropertyValueTypeError",
                                            f"The value {v} for the property {k} is of a different type than the property can accept.", [str(v), k], [f"#/{k}"]))
                self.writable_doc(system, tpath).update(body)
            else:
                k = next(iter(body), "")
                raise Refused(error(400, "Base.1.8.PropertyNotWritable",
                                    f"The property {k} is a read only property and cannot be assigned a value.", [k], [f"#/{k}"]))
        except Refused as r:
            return self.refuse(r.reply)
        self.bump(system, tpath)
        return 204, {"ETag": self.etag(system, tpath)} if "etag_in_body_only" not in self.quirks else {}, None

    def check_system_patch(self, doc, body):
        lenient = "lenient_patch" in self.quirks
        changes = {}
        for k, v in body.items():
            if k != "Boot":
                if lenient:
                    continue
                msg_id = "PropertyNotWritable" if k in doc else "PropertyUnknown"
                raise Refused(error(400, f"Base.1.8.{msg_id}", f"The property {k} cannot be written.", [k], [f"#/{k}"]))
        boot_patch = body.get("Boot")
        if boot_patch is None:
            return changes
        if not isinstance(boot_patch, dict):
            raise Refused(error(400, "Base.1.8.PropertyValueTypeError", "Boot must be an object.", ["Boot"], ["#/Boot"]))
        boot = doc.get("Boot")
        if not isinstance(boot, dict):
            if lenient:
                return changes
            raise Refused(error(400, "Base.1.8.PropertyUnknown", "The property Boot is not in the list of valid properties for the resource.", ["Boot"], ["#/Boot"]))
        mode = "BootSourceOverrideMode"
        if mode in boot_patch and "mode_read_only" in self.quirks:
            raise Refused(error(400, "Base.1.8.PropertyNotWritable",
                                f"The property {mode} is a read only property and cannot be assigned a value.", [mode], [f"#/Boot/{mode}"]))
        if mode in boot_patch and len(boot_patch) > 1 and "mode_alone_only" in self.quirks:
            raise Refused((400, {}, {"error": {"code": "Base.1.2.GeneralError", "message": "A general error has occurred. See ExtendedInfo for more information",
                                               "@Message.ExtendedInfo": [
                                                   {"Message": "Unable to modify the attribute because the attribute is read-only and depends on other attributes.",
                                                    "MessageId": "IDRAC.1.6.SYS410", "RelatedProperties": [f"#/Boot/{mode}"], "Severity": "Warning"}]}}))
        for k, v in boot_patch.items():
            listed = boot.get(f"{k}@Redfish.AllowableValues")
            if k not in boot and listed is None:
                if lenient:
                    continue
                raise Refused(error(400, "Base.1.8.PropertyUnknown",
                                    f"The property {k} is not in the list of valid properties for the resource.", [k], [f"#/Boot/{k}"]))
            if k not in BOOT_WRITABLE:
                raise Refused(error(400, "Base.1.8.PropertyNotWritable",
                                    f"The property {k} is a read only property and cannot be assigned a value.", [k], [f"#/Boot/{k}"]))
            allowed = listed if listed is not None else STANDARD.get(k)
            if allowed is not None and v not in allowed:
                raise Refused(error(400, "Base.1.8.PropertyValueNotInList",
                                    f"The value {v} for the property {k} is not in the list of acceptable values.", [str(v), k], [f"#/Boot/{k}"]))
            if k == "BootSourceOverrideTarget" and v in self.refused_targets:
                raise Refused(error(400, "Base.1.8.PropertyValueConflict",
                                    f"The boot source {v} is disabled in the system setup.", [str(v), k], [f"#/Boot/{k}"]))
            changes[k] = v
        return changes

    def post(self, system, tpath, path, body):
        if system is None:
            return error(405, "Base.1.8.OperationNotAllowed", f"POST not allowed on {path}")
        sysdoc = self.render(system, self.template)
        action = (sysdoc.get("Actions") or {}).get("#ComputerSystem.Reset")
        if action is None or norm(action.get("target", "")) != path:
            return error(404, "Base.1.8.ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        rt = body.get("ResetType") if isinstance(body, dict) else None
        allowed = action.get("ResetType@Redfish.AllowableValues")
        info_path = action.get("@Redfish.ActionInfo")
        if allowed is None and info_path:
            info = self.render(system, norm(info_path).replace(system, self.template)) or {}
            for p in info.get("Parameters", []):
                if p.get("Name") == "ResetType":
                    allowed = p.get("AllowableValues")
        if rt not in (allowed if allowed is not None else RESET_TYPES):
            return self.refuse(error(400, "Base.1.8.ActionParameterValueNotInList",
                                     f"The value {rt} for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values.",
                                     [str(rt), "ResetType", "ComputerSystem.Reset"], ["#/ResetType"]))
        doc = self.writable_doc(system, self.template)
        state = doc.get("PowerState", "Off")
        on = state in ("On", "PoweringOn")
        if "power_conflict" in self.quirks:
            if rt in ("On", "ForceOn") and on:
                return 409, {}, {"error": {"code": "Base.1.2.GeneralError", "message": "A general error has occurred.",
                                           "@Message.ExtendedInfo": [{"Message": "Server is already powered ON.", "MessageId": "IDRAC.1.6.PSU501", "Severity": "Informational"}]}}
            if rt in ("ForceOff", "GracefulShutdown") and not on:
                return 409, {}, {"error": {"code": "Base.1.2.GeneralError", "message": "A general error has occurred.",
                                           "@Message.ExtendedInfo": [{"Message": "Server is already powered OFF.", "MessageId": "IDRAC.1.6.PSU502", "Severity": "Informational"}]}}
            if rt in ("ForceRestart", "GracefulRestart", "PowerCycle") and not on:
                return 400, {}, {"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
                                           "@Message.ExtendedInfo": [{"MessageArgs": ["Power is off"], "MessageId": "iLO.0.10.InvalidOperationForSystemState"}]}}
        boots = False
        if rt in ("On", "ForceOn"):
            boots = not on
            doc["PowerState"] = "On"
        elif rt in ("ForceOff", "GracefulShutdown"):
            doc["PowerState"] = "Off"
        elif rt in ("ForceRestart", "GracefulRestart", "PowerCycle"):
            boots = True
            doc["PowerState"] = "On"
        elif rt == "PushPowerButton":
            boots = not on
            doc["PowerState"] = "Off" if on else "On"
        if boots:
            self.record_boot(system, doc)
        self.bump(system, self.template)
        return 204, {}, None

    def record_boot(self, system, doc):
        boot = doc.get("Boot") or {}
        sb_link = (doc.get("SecureBoot") or {}).get("@odata.id")
        sb = self.render(system, norm(sb_link).replace(system, self.template)) if sb_link else None
        entry = {"system": system,
                 "override": boot.get("BootSourceOverrideEnabled", "Disabled"),
                 "target": boot.get("BootSourceOverrideTarget"),
                 "mode": boot.get("BootSourceOverrideMode"),
                 "secure_boot": (sb or {}).get("SecureBootEnable")}
        if self.keep_log:
            self.boots.append(entry)
        if boot.get("BootSourceOverrideEnabled") == "Once":
            boot["BootSourceOverrideEnabled"] = "Disabled"


def fleet_uuid(i):
    return f"f1ee7000-0000-4000-8000-{i:012x}"


def fleet_mac(i, tpath):
    nic = sum(tpath.encode()) & 0xff
    return f"52:54:{nic:02x}:{(i >> 16) & 0xff:02x}:{(i >> 8) & 0xff:02x}:{i & 0xff:02x}"


async def serve_connection(emu, reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            emu.in_flight += 1
            emu.max_in_flight = max(emu.max_in_flight, emu.in_flight)
            try:
                status, extra, doc = emu.handle(method, target, headers, body)
            except Exception as e:  # a bug here must show, not hang the driver
                print(f"emulator error on {method} {target}: {e!r}", file=sys.stderr)
                status, extra, doc = error(500, "Base.1.8.InternalError", repr(e))
            finally:
                emu.in_flight -= 1
            payload = b"" if doc is None else doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "OData-Version: 4.0",
                   f"Content-Length: {len(payload)}"]
            if doc is not None:
                out.append("Content-Type: application/json")
            out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--quirk", action="append", default=[])
    ap.add_argument("--set", default=None, help='JSON {path: partial doc} merged into the tree')
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--fleet", type=int, default=0, help="serve N clones of the tree's system")
    ap.add_argument("--ports", type=int, default=1, help="listen on this many ports")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    with open(a.tree) as f:
        tree = json.load(f)
    if a.set:
        for path, partial in json.loads(a.set).items():
            deep_merge(tree.setdefault(path, {}), partial)
    emu = Emulator(tree, a.quirk, a.user, a.password, a.fleet)
    servers = []
    for i in range(a.ports):
        srv = await asyncio.start_server(lambda r, w: serve_connection(emu, r, w), "127.0.0.1",
                                         a.port if i == 0 else 0, backlog=1024)
        servers.append(srv)
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print("READY " + " ".join(map(str, ports)), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
