"""Whether the sender may POST to a payload URL as written, worked out once per URL.

The checks before an attempt (https only unless plain http is allowed; no literal blocked
address, no ``localhost``, nothing the HTTP client would send elsewhere than checked) read the
URL's text only, never DNS: their verdict is a pure function of the URL and settings that do not
change while the process runs, so it is kept per URL instead of parsed again on every delivery
(it cost as much CPU as the rest of the attempt's own code). Names are still checked on every
resolution by the connector's ``GuardedResolver``, which stays the authority at send time: a
name that starts resolving to a blocked address is refused on the next connection, whatever
this cache says.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hookstream.net.ssrf import AddressPolicy, BlockedAddressError

PLAIN_HTTP_REFUSED = (
    "plain http:// payload URLs are refused; use https:// (or, for development only, "
    "set HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP=true)"
)


class UrlVerdicts:
    """The reason a payload URL is refused (or None), remembered per URL.

    Bounded: past ``max_urls`` distinct URLs the memory is emptied and filled again, which
    costs one check per URL and never a wrong verdict.
    """

    def __init__(self, guard: AddressPolicy, allow_plain_http: bool, max_urls: int = 10_000):
        self.guard = guard
        self.allow_plain_http = allow_plain_http
        self.max_urls = max_urls
        self._verdicts: dict[str, str | None] = {}

    def refusal(self, url: str) -> str | None:
        """Why a POST to ``url`` is refused for good, or None if it may be attempted."""
        try:
            return self._verdicts[url]
        except KeyError:
            pass
        verdict = self._check(url)
        if len(self._verdicts) >= self.max_urls:
            self._verdicts.clear()
        self._verdicts[url] = verdict
        return verdict

    def _check(self, url: str) -> str | None:
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = ""
        if scheme != "https" and not self.allow_plain_http:
            return PLAIN_HTTP_REFUSED
        try:
            self.guard.check_url(url)
        except BlockedAddressError as exc:
            return str(exc)
        return None
