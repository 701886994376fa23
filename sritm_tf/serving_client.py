"""Client for a Deep SR-ITM model served by TensorFlow Serving.

Two protocols, one request each (signatures in `sritm_tf.export.SIGNATURES`):

* REST, port 8501: POST `http://host:8501/v1/models/<name>[/versions/<v>]:predict`
  with JSON `{"signature_name": ..., "instances": [...]}` (row format, answered
  with `{"predictions": ...}`) or `{"inputs": {...}}` (columnar format, answered
  with `{"outputs": ...}`). Simple, but a 1080p frame as JSON numbers is tens of MB.
* gRPC, port 8500: `tensorflow_serving.apis.predict_pb2.PredictRequest` to
  `PredictionService/Predict`; tensors travel as raw bytes. Needs the
  `tensorflow-serving-api` package.

    hdr_pq16 = rest_predict(sdr_rgb8[None], rest_url("localhost"), "rgb8_to_pq16")[0]
"""
import contextlib
import functools
import http.client
import json
import threading
import urllib.request

import numpy as np

from sritm_tf.errors import ToolError
from sritm_tf.notes import note


DEFAULT_PORTS = {"rest": 8501, "grpc": 8500}


def server(host="localhost", port=None, protocol="rest"):
    """(host, port) of the server that `host` names: a host name or address ("serving",
    "10.0.0.2", "[::1]", with ":PORT" or not) or its URL ("http://serving:8501"; TF Serving's
    REST API is plain HTTP). `port`, if given, replaces the one in `host`; else TF Serving's
    default for `protocol` (8501 REST, 8500 gRPC). InputError for another scheme, a path, a
    query or a port that is not a number from 1 to 65535."""
    import urllib.parse

    from sritm_tf.errors import InputError

    given = host
    if "://" not in host:
        host = "http://" + host
    parts = urllib.parse.urlsplit(host)
    if parts.scheme != "http" or not parts.hostname:
        raise InputError(f"--host {given}: expected a host name or address, or the server's http:// URL "
                         "(TF Serving's REST API is plain HTTP)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"--host {given}: name the server only (the model's path is made from --model-name)")
    try:
        in_url = parts.port
    except ValueError:
        raise InputError(f"--host {given}: the port must be a number from 1 to 65535") from None
    port = port or in_url or DEFAULT_PORTS[protocol]
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: expected a number from 1 to 65535")
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return name, port


def rest_url(host="localhost", port=8501, model_name="sritm", version=None):
    """The REST predict URL of a model (latest version unless `version` is given)."""
    versioned = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model_name}{versioned}:predict"


def _signature(signature_name):
    from sritm_tf.export import SIGNATURES  # TensorFlow: only once a request is made

    if signature_name not in SIGNATURES:
        raise ValueError(f"unknown signature {signature_name!r}; the model has {sorted(SIGNATURES)}")
    return SIGNATURES[signature_name]


def rest_body(inputs, signature_name="serving_default", columnar=False):
    """The JSON request body (a str) for a batch `inputs` [N, H, W, 3], cast to
    the signature's input dtype. Row format: one instance per image; columnar:
    {"inputs": {<input name>: batch}}."""
    input_name, input_dtype, _, _ = _signature(signature_name)
    batch = np.asarray(inputs).astype(input_dtype).tolist()
    body = {"signature_name": signature_name}
    if columnar:
        body["inputs"] = {input_name: batch}
    else:
        body["instances"] = batch
    return json.dumps(body)


def parse_rest_response(text, signature_name="serving_default"):
    """The output batch of a REST predict response, as the signature's dtype."""
    _, _, output_name, output_dtype = _signature(signature_name)
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not {"error", "predictions", "outputs"} & set(answer):
        raise ToolError("not a TF Serving predict answer (no JSON predictions / outputs)")
    if "error" in answer:
        raise ToolError(f"TF Serving: {one_line(answer['error'])}")
    values = answer["predictions"] if "predictions" in answer else answer["outputs"]
    if isinstance(values, dict):  # several outputs: pick ours
        values = values[output_name]
    return np.asarray(values).astype(output_dtype)


def one_line(text, limit=300):
    """`text` on one line (whitespace runs as one space), at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


class ConnectTimeout(TimeoutError):
    """No TCP connection to the server within the connect timeout."""


class _Connection(http.client.HTTPConnection):
    """An HTTPConnection with its own connect timeout; `timeout` then bounds each
    send and each wait for the answer."""

    def __init__(self, *args, connect_timeout=10.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout

    def connect(self):
        timeout = self.timeout
        self.timeout = self.connect_timeout
        try:
            super().connect()
        except TimeoutError:
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        finally:
            self.timeout = timeout
        self.sock.settimeout(timeout)


class _Handler(urllib.request.HTTPHandler):
    def __init__(self, connect_timeout):
        super().__init__()
        self.connect_timeout = connect_timeout

    def http_open(self, req):
        return self.do_open(functools.partial(_Connection, connect_timeout=self.connect_timeout), req)


@contextlib.contextmanager
def _said_while_waiting(message, after=2.0):
    """Notes `message` (`sritm_tf.notes`) if the block is still running `after` seconds on: a
    server that is slow to answer (a large frame on a CPU) is not taken for a hung client."""
    timer = threading.Timer(after, note, [message])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _http_error(err):
    """One line for an HTTP error answer: TF Serving's JSON "error", else the status
    (a proxy's or another server's HTML page is not shown)."""
    body = err.read().decode(errors="replace")
    try:
        reason = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        content = (err.headers.get("Content-Type") or "no content type").split(";")[0]
        reason = f"{err.reason} (a {content} answer, not TF Serving's)"
    return f"HTTP {err.code}: {one_line(reason)}"


def rest_predict(inputs, url, signature_name="serving_default", columnar=False, timeout=60.0,
                 connect_timeout=10.0):
    """POSTs `inputs` [N, H, W, 3] to a REST predict `url`; returns the output batch.
    `connect_timeout` bounds the TCP connection, `timeout` the sending and each wait
    for the answer (the server's inference time). Errors are ToolErrors (RuntimeErrors)
    whose message starts with `url`."""
    request = urllib.request.Request(
        url, data=rest_body(inputs, signature_name, columnar).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    opener = urllib.request.build_opener(_Handler(connect_timeout))
    try:
        with _said_while_waiting(f"{url}: waiting for the answer (up to {timeout:g} s)"):
            with opener.open(request, timeout=timeout) as response:
                return parse_rest_response(response.read(), signature_name)
    except urllib.error.HTTPError as err:  # TF Serving puts the reason in the body
        raise ToolError(f"{url}: {_http_error(err)}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, ConnectTimeout):
            raise ToolError(f"{url}: {err.reason}") from None
        if isinstance(err.reason, TimeoutError):
            raise ToolError(f"{url}: the server took the connection but not the request "
                            f"within {timeout:g} s") from None
        raise ToolError(f"{url}: cannot connect ({err.reason})") from None
    except TimeoutError:
        raise ToolError(f"{url}: no answer within {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError) as err:  # closed or not HTTP
        raise ToolError(f"{url}: not an HTTP answer ({type(err).__name__}: {one_line(err)})") from None
    except ToolError as err:  # parse_rest_response's
        raise ToolError(f"{url}: {err}") from None
    except OSError as err:
        raise ToolError(f"{url}: {err}") from None


def grpc_request(inputs, model_name="sritm", signature_name="serving_default", version=None):
    """A `PredictRequest` for `inputs` [N, H, W, 3]: model_spec name / signature
    (and version), one input tensor of the signature's dtype."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    input_name, input_dtype, _, _ = _signature(signature_name)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    batch = np.asarray(inputs).astype(input_dtype)
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(batch))
    return request


def parse_grpc_response(response, signature_name="serving_default"):
    """The output batch of a `PredictResponse`."""
    import tensorflow as tf

    _, _, output_name, output_dtype = _signature(signature_name)
    return tf.make_ndarray(response.outputs[output_name]).astype(output_dtype)


def grpc_predict(inputs, target="localhost:8500", model_name="sritm", signature_name="serving_default",
                 version=None, timeout=60.0, connect_timeout=10.0):
    """Sends `inputs` [N, H, W, 3] to TF Serving's gRPC `target`; returns the output batch.
    ToolError (a RuntimeError) naming `target` when no connection is ready within
    `connect_timeout` seconds or the call fails; `timeout` is the deadline of the call."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = grpc_request(inputs, model_name, signature_name, version)
    size = 1 << 30  # frames are large; gRPC's default message cap is 4 MB
    options = [("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size)]
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            raise ToolError(f"{target}: no connection within {connect_timeout:g} s") from None
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            with _said_while_waiting(f"{target}: waiting for the answer (up to {timeout:g} s)"):
                response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as err:
            raise ToolError(f"{target}: {err.code().name}: {one_line(err.details())}") from None
        return parse_grpc_response(response, signature_name)
