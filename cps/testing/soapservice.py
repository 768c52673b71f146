"""A SOAP web service that knows the practitioner by the card, for tests and demos.

Shaped like the services health software calls with the card (the DMP in
direct mode, INSi): a WSDL at ``?wsdl``, document/literal SOAP 1.1 over HTTPS
with TLS client authentication, behind :class:`cps.tls.WsgiMiddleware`. One
operation, ``lireIdentite`` (read the practitioner), answers what the server
learnt from the card's certificate -- so a SOAP client (zeep) proves the whole
chain: card, TLS, proxy or TLS server, certificate validation, application.

Standard library only (wsgiref, ElementTree on input we produce ourselves in
tests; expat refuses entity expansion bombs since 2.4.1)::

    app = soap_app(validator, trusted_proxies=("127.0.0.1",))
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - a test service: input is the tests' own
from typing import Any, Callable, Dict, Iterable, List
from xml.sax.saxutils import escape

from cps.tls.middleware import CertificateAuthenticator, WsgiMiddleware

__all__ = ["NAMESPACE", "soap_app", "wsdl"]

#: the service's target namespace
NAMESPACE = "urn:cps-middleware:test:identite"
_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_MAX_BODY = 64 * 1024


def wsdl(address: str) -> str:
    """The service description, with ``address`` as the endpoint."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
             xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
             xmlns:xsd="http://www.w3.org/2001/XMLSchema"
             xmlns:tns="{NAMESPACE}" targetNamespace="{NAMESPACE}" name="IdentiteService">
  <types>
    <xsd:schema targetNamespace="{NAMESPACE}" elementFormDefault="qualified">
      <xsd:element name="lireIdentite">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="contexte" type="xsd:string"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="lireIdentiteReponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="idnat" type="xsd:string"/>
          <xsd:element name="nom" type="xsd:string"/>
          <xsd:element name="prenom" type="xsd:string"/>
          <xsd:element name="profession" type="xsd:string"/>
          <xsd:element name="contexte" type="xsd:string"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="lireIdentiteIn"><part name="parameters" element="tns:lireIdentite"/></message>
  <message name="lireIdentiteOut">
    <part name="parameters" element="tns:lireIdentiteReponse"/>
  </message>
  <portType name="IdentitePort">
    <operation name="lireIdentite">
      <input message="tns:lireIdentiteIn"/><output message="tns:lireIdentiteOut"/>
    </operation>
  </portType>
  <binding name="IdentiteBinding" type="tns:IdentitePort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="lireIdentite">
      <soap:operation soapAction="{NAMESPACE}#lireIdentite"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="IdentiteService">
    <port name="IdentitePort" binding="tns:IdentiteBinding">
      <soap:address location="{escape(address)}"/>
    </port>
  </service>
</definitions>
"""


def _service(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    scheme = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    address = f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    if environ["REQUEST_METHOD"] == "GET":
        return _answer(start_response, "200 OK", "text/xml; charset=utf-8", wsdl(address))
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 < length <= _MAX_BODY:
        return _fault(start_response, "Client", "a SOAP request of 1 to 64 KiB is expected")
    try:
        envelope = ET.fromstring(environ["wsgi.input"].read(length))  # noqa: S314
        request = envelope.find(f"{{{_SOAP}}}Body/{{{NAMESPACE}}}lireIdentite")
        if request is None:
            raise ValueError("no lireIdentite in the body")
        context = request.findtext(f"{{{NAMESPACE}}}contexte") or ""
    except (ET.ParseError, ValueError) as exc:
        return _fault(start_response, "Client", str(exc))
    p = environ["cps.practitioner"]
    fields = {"idnat": p.idnat, "nom": p.last_name or "", "prenom": p.first_name or "",
              "profession": p.profession_label or "", "contexte": context}
    body = "".join(f"<tns:{k}>{escape(str(v))}</tns:{k}>" for k, v in fields.items())
    return _answer(start_response, "200 OK", "text/xml; charset=utf-8",
                   f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{_SOAP}" '
                   f'xmlns:tns="{NAMESPACE}"><soap:Body><tns:lireIdentiteReponse>{body}'
                   f"</tns:lireIdentiteReponse></soap:Body></soap:Envelope>")


def _fault(start_response: Callable[..., Any], code: str, text: str) -> List[bytes]:
    return _answer(start_response, "500 Internal Server Error", "text/xml; charset=utf-8",
                   f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{_SOAP}">'
                   f"<soap:Body><soap:Fault><faultcode>soap:{code}</faultcode>"
                   f"<faultstring>{escape(text)}</faultstring></soap:Fault></soap:Body>"
                   f"</soap:Envelope>")


def _answer(start_response: Callable[..., Any], status: str, content_type: str,
            text: str) -> List[bytes]:
    body = text.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def soap_app(validator: Any, *, trusted_proxies: Iterable[str] = ()) -> WsgiMiddleware:
    """The service behind :class:`~cps.tls.WsgiMiddleware` (a card certificate required).

    :param validator: a :class:`cps.trust.Validator` (e.g. ``TestPKI.validator()``).
    :param trusted_proxies: addresses whose certificate header is believed
        (a reverse proxy in front); empty when served by
        :func:`cps.tls.wsgi_server.make_server` itself.
    """
    return WsgiMiddleware(_service, CertificateAuthenticator(
        validator, trusted_proxies=tuple(trusted_proxies)))
