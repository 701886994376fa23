"""`sritm serve-client`: convert an SDR image with a model served by TF Serving."""


def register(subparsers):
    p = subparsers.add_parser(
        "serve-client", help="send an SDR image to TF Serving, save the HDR10 result",
        description="Reads an 8-bit SDR BT.709 image, asks TF Serving's rgb8_to_pq16 signature "
                    "(REST or gRPC) for the HDR10 frame, writes a 16-bit PNG of PQ BT.2020 R'G'B' "
                    "codes (full range: E' = code / 65535).")
    p.add_argument("input", help="8-bit SDR image (PNG, JPEG, ...)")
    p.add_argument("-o", "--output", required=True, help="16-bit PNG to write")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, help="default: 8501 (REST) or 8500 (gRPC)")
    p.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    p.add_argument("--model-name", default="sritm")
    p.add_argument("--version", type=int, help="model version (default: the latest served)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the answer: the server's inference time (default: 300)")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the connection to the server (default: 10)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: a mistyped argument fails at once."""
    from sritm_tf.convert import check_input, check_output
    from sritm_tf.errors import UserError

    for option, value in (("--timeout", args.timeout), ("--connect-timeout", args.connect_timeout)):
        if not value > 0:
            raise UserError(f"{option}: expected a positive number of seconds, got {value:g}")
    try:
        check_input(args.input)
        check_output(args.output, args.overwrite, args.input)  # the folder must exist, as for convert
    except OSError as err:
        raise UserError(str(err)) from None


def run(args):
    import os

    import numpy as np

    from sritm_tf import imageio, serving_client
    from sritm_tf.serving_client import one_line
    from sritm_tf.errors import UserError

    if not args.output.lower().endswith(".png"):
        raise UserError(f"{args.output}: the output must be a .png (16-bit)")
    if os.path.exists(args.output) and not args.overwrite:
        raise UserError(f"{args.output}: exists (pass --overwrite to replace it)")
    try:
        rgb = imageio.read_image(args.input)  # drops alpha
    except (OSError, ValueError):
        raise UserError(f"{args.input}: not a readable image") from None
    if rgb.dtype != np.uint8:
        raise UserError(f"{args.input}: expected an 8-bit SDR image")
    batch = rgb[None]
    if args.protocol == "rest":
        url = serving_client.rest_url(args.host, args.port or 8501, args.model_name, args.version)
        try:
            hdr = serving_client.rest_predict(batch, url, "rgb8_to_pq16", timeout=args.timeout,
                                              connect_timeout=args.connect_timeout)
        except RuntimeError as err:  # refused, timed out, HTTP error, not TF Serving: starts with the URL
            raise UserError(str(err)) from None
        except OSError as err:
            raise UserError(f"{url}: {err}") from None
    else:
        try:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401
        except ImportError as err:
            raise UserError(f'--protocol grpc: needs the serving extra ({err.name or err} is not installed): '
                            f'pip install "sritm_tf[serving]"') from None

        target = f"{args.host}:{args.port or 8500}"
        try:
            hdr = serving_client.grpc_predict(batch, target, args.model_name, "rgb8_to_pq16",
                                              args.version, args.timeout, args.connect_timeout)
        except RuntimeError as err:  # no connection: starts with the target
            raise UserError(str(err)) from None
        except grpc.RpcError as err:
            raise UserError(f"{target}: {err.code().name}: {one_line(err.details())}") from None
    try:
        imageio.write_image(args.output, hdr[0])
    except (OSError, ValueError) as err:
        raise UserError(f"{args.output}: could not write ({err})") from None
    print(f"wrote {args.output} ({hdr.shape[2]}x{hdr.shape[1]}, 16-bit PQ BT.2020)")
    return 0
