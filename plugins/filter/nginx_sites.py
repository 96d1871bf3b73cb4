# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The endpoints of the nginx role's ``nginx_sites``: one reading for every role that needs them.

A site's scheme, ports, canonical name, upstream and certificate source are decided by the nginx role (its
templates and the defaults in its ``meta/argument_specs.yml``: ``tls`` true, ``redirect_http`` true, ``acme``
true). The roles that look at the sites from outside (prometheus's probes, the smoke checks, the app role, the
letsencrypt role) read them through this filter instead of re-deriving them, so a default is written once here
(tests/unit/test_filter_nginx_sites.py checks that it equals the nginx role's spec). No Ansible import:
unit-testable alone.
"""

from __future__ import annotations

from collections.abc import Mapping

# Defaults of an nginx_sites item in the nginx role's argument spec.
DEFAULT_TLS = True
DEFAULT_REDIRECT_HTTP = True
DEFAULT_ACME = True
# Ports the nginx role's site template listens on.
DEFAULT_HTTP_PORT = 80
DEFAULT_HTTPS_PORT = 443

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n", ""}


def _bool(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{where}: expected a boolean, found {value!r}")


def _port(value, where):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a port number, found {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{where}: expected a port number (1-65535), found {port}")
    return port


def _host_address(host, hostvars):
    """The address nginx's template writes for a host of an upstream group: its ansible_host, else its name."""
    if hostvars is None:
        return host
    try:
        variables = hostvars[host]
    except KeyError:
        return host
    try:
        address = variables["ansible_host"]
    except KeyError:
        return host
    return str(address) if address not in (None, "") else host


def _upstream(site, where, groups, hostvars):
    upstream = site.get("upstream")
    if upstream is None:
        return None
    if not isinstance(upstream, Mapping):
        raise ValueError(f"{where}.upstream: expected a dict, found {upstream!r}")
    servers = []
    for index, server in enumerate(upstream.get("servers") or []):
        if not isinstance(server, Mapping) or not server.get("address"):
            raise ValueError(f"{where}.upstream.servers[{index}]: expected a dict with an address, found {server!r}")
        servers.append(str(server["address"]))
    group = upstream.get("group")
    port = upstream.get("port")
    hosts = []
    if group is not None:
        hosts = list((groups or {}).get(group) or []) if groups is not None else []
        if groups is not None and hosts:
            port = _port(port, f"{where}.upstream.port (needed with upstream.group {group})")
            servers += [f"{_host_address(h, hostvars)}:{port}" for h in hosts]
        elif port is not None:
            port = _port(port, f"{where}.upstream.port")
    return {"servers": servers, "group": group, "port": port, "hosts": hosts}


def nginx_site_endpoints(sites, *, groups=None, hostvars=None, health_path="/", http_port=DEFAULT_HTTP_PORT,
                         https_port=DEFAULT_HTTPS_PORT, tls_default=DEFAULT_TLS,
                         redirect_http_default=DEFAULT_REDIRECT_HTTP, acme_default=DEFAULT_ACME):
    """Return one dict per site of ``nginx_sites``, in order: names, scheme, ports, URLs, upstream, ACME."""
    if sites is None:
        return []
    if isinstance(sites, (str, bytes, Mapping)) or not hasattr(sites, "__iter__"):
        raise ValueError(f"nginx_sites: expected a list of sites, found {sites!r}")
    http_port = _port(http_port, "http_port")
    https_port = _port(https_port, "https_port")
    path = str(health_path or "/")
    path = path if path.startswith("/") else "/" + path
    endpoints = []
    for index, site in enumerate(sites):
        where = f"nginx_sites[{index}]"
        if not isinstance(site, Mapping):
            raise ValueError(f"{where}: expected a dict, found {site!r}")
        name = site.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name: expected the site's name, found {name!r}")
        where = f"{where} ({name})"
        names = site.get("server_names")
        if (not isinstance(names, (list, tuple)) or not names
                or not all(isinstance(n, str) and n for n in names)):
            raise ValueError(f"{where}.server_names: expected a list of at least one host name, found {names!r}")
        tls = _bool(site.get("tls", tls_default), f"{where}.tls")
        redirect = tls and _bool(site.get("redirect_http", redirect_http_default), f"{where}.redirect_http")
        acme = (tls and _bool(site.get("acme", acme_default), f"{where}.acme")
                and site.get("certificate") in (None, ""))
        scheme, port = ("https", https_port) if tls else ("http", http_port)

        def url(scheme, port, default, server=names[0]):
            return f"{scheme}://{server}{'' if port == default else f':{port}'}{path}"

        endpoints.append({
            "name": name,
            "server_names": list(names),
            "server_name": names[0],
            "tls": tls,
            "scheme": scheme,
            "port": port,
            "ports": [http_port, https_port] if tls else [http_port],
            "redirect_http": redirect,
            "acme": acme,
            "health_path": path,
            "url": url("https", https_port, 443) if tls else url("http", http_port, 80),
            "http_url": url("http", http_port, 80),
            "upstream": _upstream(site, where, groups, hostvars),
        })
    return endpoints


class FilterModule:
    """opsforge.stack filters for the nginx role's sites."""

    def filters(self):
        return {"nginx_site_endpoints": nginx_site_endpoints}
