"""One module per `exif-jax` subcommand, each exposing `main(argv: list[str]) -> int`."""
