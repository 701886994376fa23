"""TF Serving client: REST bodies, gRPC requests, and round trips against local
stand-ins for TF Serving (which needs Docker) that run the exported SavedModel."""
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from sritm_tf import build_deep_sritm
from sritm_tf.cli import main
from sritm_tf.export import SIGNATURES, export_savedmodel
from sritm_tf.errors import InputError
from sritm_tf.serving_client import (grpc_predict, grpc_request, parse_rest_response, rest_body, rest_predict,
                                     rest_url, server)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_deep_sritm(scale=2, channels=8, m=1, n=1)
    path = export_savedmodel(model, tmp_path_factory.mktemp("serving") / "sritm" / "1")
    return tf.saved_model.load(str(path))


def run_signature(loaded, signature_name, batch):
    input_name, input_dtype, output_name, _ = SIGNATURES[signature_name]
    fn = loaded.signatures[signature_name]
    return fn(**{input_name: tf.constant(np.asarray(batch, input_dtype))})[output_name].numpy()


def test_rest_url():
    assert rest_url() == "http://localhost:8501/v1/models/sritm:predict"
    assert rest_url("10.0.0.2", 9000, "hdr", 7) == "http://10.0.0.2:9000/v1/models/hdr/versions/7:predict"


def test_rest_body_row_and_columnar():
    rgb8 = np.arange(2 * 4 * 5 * 3).reshape(2, 4, 5, 3) % 256
    row = json.loads(rest_body(rgb8, "rgb8_to_pq16"))
    assert row["signature_name"] == "rgb8_to_pq16" and set(row) == {"signature_name", "instances"}
    instances = np.array(row["instances"])
    assert instances.shape == (2, 4, 5, 3) and instances.dtype.kind == "i"  # uint8 sent as integers
    np.testing.assert_array_equal(instances, rgb8)

    yuv = np.random.default_rng(0).uniform(0, 1, (1, 3, 4, 3)).astype(np.float32)
    col = json.loads(rest_body(yuv, columnar=True))
    assert col["signature_name"] == "serving_default" and set(col["inputs"]) == {"sdr_yuv"}
    sent = np.array(col["inputs"]["sdr_yuv"], np.float32)
    assert sent.shape == (1, 3, 4, 3)
    np.testing.assert_array_equal(sent, yuv)  # float32 survives JSON exactly
    with pytest.raises(ValueError, match="unknown signature"):
        rest_body(yuv, "predict")


def test_parse_rest_response():
    out = parse_rest_response(json.dumps({"predictions": [[[[1, 2, 65535]]]]}), "rgb8_to_pq16")
    assert out.dtype == np.uint16 and out.shape == (1, 1, 1, 3) and out[0, 0, 0, 2] == 65535
    with pytest.raises(RuntimeError, match="bad input"):
        parse_rest_response(json.dumps({"error": "bad input"}))


def test_grpc_request():
    rgb8 = np.random.default_rng(0).integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    request = grpc_request(rgb8, "sritm", "rgb8_to_pq16", version=4)
    assert request.model_spec.name == "sritm" and request.model_spec.signature_name == "rgb8_to_pq16"
    assert request.model_spec.version.value == 4
    tensor = request.inputs["sdr_rgb8"]
    assert list(request.inputs) == ["sdr_rgb8"]
    assert tensor.dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in tensor.tensor_shape.dim] == [2, 6, 7, 3]
    np.testing.assert_array_equal(tf.make_ndarray(tensor), rgb8)
    # Wire round trip: the serialized request parses back to the same message.
    from tensorflow_serving.apis import predict_pb2
    assert predict_pb2.PredictRequest.FromString(request.SerializeToString()) == request

    floats = grpc_request(np.zeros((1, 2, 3, 3)), signature_name="serving_default")
    assert floats.inputs["sdr_yuv"].dtype == tf.float32.as_datatype_enum
    assert not floats.model_spec.HasField("version")


class FakeServing:
    """TF Serving's REST predict API on 127.0.0.1, answering `requests` requests
    with the loaded SavedModel, then stopping."""

    def __init__(self, loaded, requests):
        outer = self
        self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append((self.path, body))
                if not re.fullmatch(r"/v1/models/sritm(/versions/\d+)?:predict", self.path):
                    return self._reply(404, {"error": f"no model at {self.path}"})
                name = body.get("signature_name", "serving_default")
                if "instances" in body:
                    answer = {"predictions": run_signature(loaded, name, body["instances"]).tolist()}
                else:
                    (batch,) = body["inputs"].values()
                    answer = {"outputs": run_signature(loaded, name, batch).tolist()}
                self._reply(200, answer)

            def _reply(self, code, answer):
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 30  # handle_request gives up after that
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=lambda: [self.server.handle_request() for _ in range(requests)],
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=60)
        self.server.server_close()


def test_rest_round_trip(loaded, tmp_path, capsys):
    rng = np.random.default_rng(2)
    yuv = rng.uniform(0.1, 0.9, (2, 8, 12, 3)).astype(np.float32)
    rgb8 = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "sdr.png"), rgb8[..., ::-1])
    with FakeServing(loaded, requests=4) as serving:
        url = rest_url("127.0.0.1", serving.port, "sritm")
        got_yuv = rest_predict(yuv, url, "serving_default", timeout=30)
        got_pq = rest_predict(rgb8[None], rest_url("127.0.0.1", serving.port, "sritm", 1), "rgb8_to_pq16",
                              columnar=True, timeout=30)
        with pytest.raises(RuntimeError, match="HTTP 404"):
            rest_predict(yuv, rest_url("127.0.0.1", serving.port, "other"), timeout=30)
        code = main(["serve-client", str(tmp_path / "sdr.png"), "-o", str(tmp_path / "hdr.png"),
                     "--host", "127.0.0.1", "--port", str(serving.port), "--timeout", "30"])
    assert [b.get("signature_name") for _, b in serving.bodies] == ["serving_default", "rgb8_to_pq16",
                                                                   "serving_default", "rgb8_to_pq16"]
    assert got_yuv.dtype == np.float32 and got_yuv.shape == (2, 16, 24, 3)
    np.testing.assert_allclose(got_yuv, run_signature(loaded, "serving_default", yuv), atol=1e-6, rtol=0)
    assert got_pq.dtype == np.uint16 and got_pq.shape == (1, 20, 28, 3)
    np.testing.assert_array_equal(got_pq, run_signature(loaded, "rgb8_to_pq16", rgb8[None]))

    assert code == 0, capsys.readouterr().err
    written = cv2.imread(str(tmp_path / "hdr.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written[..., ::-1], got_pq[0])


def test_serve_client_reports_a_dead_server(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "sdr.png"), np.zeros((4, 4, 3), np.uint8))
    with HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as unused:
        port = unused.server_address[1]  # bound and closed: nobody listens after this
    assert main(["serve-client", str(tmp_path / "sdr.png"), "-o", str(tmp_path / "hdr.png"),
                 "--host", "127.0.0.1", "--port", str(port), "--timeout", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sritm serve-client: error: http://127.0.0.1:") and "\n" not in err
    assert not (tmp_path / "hdr.png").exists()


@pytest.mark.parametrize("host, port, protocol, expected", [
    ("localhost", None, "rest", ("localhost", 8501)), ("10.0.0.2", None, "grpc", ("10.0.0.2", 8500)),
    ("serving:9000", None, "rest", ("serving", 9000)), ("http://serving:9000", None, "rest", ("serving", 9000)),
    ("http://serving:9000/", 7000, "rest", ("serving", 7000)), ("http://serving", None, "grpc", ("serving", 8500)),
    ("[::1]:8601", None, "rest", ("[::1]", 8601))])
def test_the_server_is_a_host_or_its_url(host, port, protocol, expected):
    assert server(host, port, protocol) == expected


@pytest.mark.parametrize("host, why", [
    ("http://foo:bar", "port must be a number"), ("https://serving", "plain HTTP"),
    ("http://serving:8501/v1/models/sritm", "name the server only"), ("ftp://serving", "http://")])
def test_a_host_that_is_not_a_server_is_one_line(host, why):
    with pytest.raises(InputError, match=re.escape(why)):
        server(host)


def test_a_slow_answer_is_said_once_while_waiting(tmp_path, caplog):
    """A server that takes the request but does not answer: one note after 2 s, then the timeout."""
    import socket

    from sritm_tf.errors import ToolError

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = rest_url("127.0.0.1", listening.getsockname()[1])
        with caplog.at_level("INFO", logger="sritm_tf"), pytest.raises(ToolError, match="within 3 s"):
            rest_predict(np.zeros((1, 2, 2, 3), np.float32), url, timeout=3)
    assert caplog.messages == [f"{url}: waiting for the answer (up to 3 s)"]


def test_grpc_round_trip(loaded):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    seen = []

    class Predictor(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            seen.append(request)
            name = request.model_spec.signature_name
            input_name, _, output_name, _ = SIGNATURES[name]
            output = run_signature(loaded, name, tf.make_ndarray(request.inputs[input_name]))
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            response.outputs[output_name].CopyFrom(tf.make_tensor_proto(output))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Predictor(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        rgb8 = np.random.default_rng(3).integers(0, 256, (1, 6, 10, 3), dtype=np.uint8)
        got = grpc_predict(rgb8, f"127.0.0.1:{port}", "sritm", "rgb8_to_pq16", version=1, timeout=30)
    finally:
        server.stop(0)
    assert seen[0].model_spec.name == "sritm" and seen[0].model_spec.version.value == 1
    assert got.dtype == np.uint16 and got.shape == (1, 12, 20, 3)
    np.testing.assert_array_equal(got, run_signature(loaded, "rgb8_to_pq16", rgb8))
