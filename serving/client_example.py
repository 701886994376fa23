"""Minimal client for Deep SR-ITM served by TensorFlow Serving (no sritm_tf needed).

8-bit SDR BT.709 image in, 16-bit PNG of HDR10 code values out (PQ, BT.2020,
full range: E' = code / 65535, i.e. 10-bit code = round(code * 1023 / 65535)).
The colour conversion runs inside the served graph (signature `rgb8_to_pq16`).

    # start the server (see docker-compose.yml here), then:
    python serving/client_example.py frame_sdr.png frame_hdr10.png                 # REST
    python serving/client_example.py frame_sdr.png frame_hdr10.png --grpc          # gRPC

REST needs numpy + opencv-python-headless; gRPC also needs tensorflow-serving-api.
The same is available as `sritm serve-client` and `sritm_tf.serving_client`.
"""
import argparse
import json
import urllib.request

import cv2
import numpy as np


def predict_rest(rgb8, host="localhost", port=8501, model="sritm"):
    """POST {"signature_name", "instances"} to the REST predict API."""
    body = json.dumps({"signature_name": "rgb8_to_pq16", "instances": rgb8[None].tolist()}).encode()
    request = urllib.request.Request(f"http://{host}:{port}/v1/models/{model}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return np.asarray(json.load(response)["predictions"][0], np.uint16)


def predict_grpc(rgb8, host="localhost", port=8500, model="sritm"):
    """PredictionService/Predict with a PredictRequest (tensors as raw bytes)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "rgb8_to_pq16"
    request.inputs["sdr_rgb8"].CopyFrom(tf.make_tensor_proto(rgb8[None]))
    options = [("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)]
    with grpc.insecure_channel(f"{host}:{port}", options=options) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=300)
    return tf.make_ndarray(response.outputs["hdr_pq16"])[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdr", help="8-bit SDR image")
    parser.add_argument("hdr", help="16-bit PNG to write")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--grpc", action="store_true", help="gRPC on port 8500 instead of REST on 8501")
    args = parser.parse_args()
    rgb8 = cv2.imread(args.sdr, cv2.IMREAD_COLOR)[..., ::-1]  # OpenCV reads BGR
    hdr = predict_grpc(rgb8, args.host) if args.grpc else predict_rest(rgb8, args.host)
    cv2.imwrite(args.hdr, np.ascontiguousarray(hdr[..., ::-1]))
    print(f"{args.sdr} {rgb8.shape[1]}x{rgb8.shape[0]} -> {args.hdr} {hdr.shape[1]}x{hdr.shape[0]} (PQ BT.2020, 16-bit)")


if __name__ == "__main__":
    main()
