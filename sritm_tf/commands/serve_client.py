"""`sritm serve-client`: convert an SDR image with a model served by TF Serving."""
from sritm_tf.commands import options


def register(subparsers):
    p = subparsers.add_parser(
        "serve-client", help="send an SDR image to TF Serving, save the HDR10 result",
        description="Reads an 8-bit SDR BT.709 image, asks TF Serving's rgb8_to_pq16 signature "
                    "(REST or gRPC) for the HDR10 frame, writes a 16-bit PNG of PQ BT.2020 R'G'B' "
                    "codes (full range: E' = code / 65535).")
    p.add_argument("input", help="8-bit SDR image (PNG, JPEG, ...)")
    p.add_argument("-o", "--output", required=True, help="16-bit PNG to write")
    p.add_argument("--host", default="localhost",
                   help="the server: a host name or address (with :PORT or not), or its URL, http://HOST:PORT "
                        "(default localhost)")
    p.add_argument("--port", type=int, help="default: the one in --host, else 8501 (REST) or 8500 (gRPC)")
    p.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    p.add_argument("--model-name", default="sritm", help=options.MODEL_NAME_HELP)
    p.add_argument("--version", type=int, help="model version (default: the latest served)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the answer: the server's inference time (default: 300)")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the connection to the server (default: 10)")
    p.add_argument("--overwrite", action="store_true", help=options.OVERWRITE_HELP)
    p.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: a mistyped argument fails at once."""
    from sritm_tf.convert import check_input, check_output
    from sritm_tf.errors import UserError
    from sritm_tf.imageio import read_image
    from sritm_tf.serving_client import server

    for option, value in (("--timeout", args.timeout), ("--connect-timeout", args.connect_timeout)):
        if not value > 0:
            raise UserError(f"{option}: expected a positive number of seconds, got {value:g}")
    server(args.host, args.port, args.protocol)
    if not args.output.lower().endswith(".png"):
        raise UserError(f"{args.output}: the output must be a .png (16-bit)")
    check_input(args.input)
    check_output(args.output, args.overwrite, args.input)  # the folder must exist, as for convert
    if read_image(args.input).dtype.itemsize != 1:
        raise UserError(f"{args.input}: expected an 8-bit SDR image")


def run(args):
    from sritm_tf import imageio, serving_client
    from sritm_tf.convert import disk_full_is_one_line
    from sritm_tf.errors import UserError

    host, port = serving_client.server(args.host, args.port, args.protocol)
    batch = imageio.read_image(args.input)[None]  # 8-bit (checked), alpha dropped
    if args.protocol == "rest":
        url = serving_client.rest_url(host, port, args.model_name, args.version)
        hdr = serving_client.rest_predict(batch, url, "rgb8_to_pq16", timeout=args.timeout,
                                          connect_timeout=args.connect_timeout)
    else:
        try:
            import grpc  # noqa: F401
            from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401
        except ImportError as err:
            raise UserError(f'--protocol grpc: needs the serving extra ({err.name or err} is not installed): '
                            f'pip install "sritm_tf[serving]"') from None

        target = f"{host}:{port}"
        hdr = serving_client.grpc_predict(batch, target, args.model_name, "rgb8_to_pq16",
                                          args.version, args.timeout, args.connect_timeout)
    with disk_full_is_one_line(args.output):
        imageio.write_image(args.output, hdr[0])
    print(f"wrote {args.output} ({hdr.shape[2]}x{hdr.shape[1]}, 16-bit PQ BT.2020)")
    return 0
