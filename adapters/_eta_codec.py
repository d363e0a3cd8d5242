"""A lossless codec for η frames: each frame predicted from the frames before it, the residual stored in byte planes.

Consecutive frames of a relaxation differ little, and smoothly. A frame at
position ``p`` of its *chain* (a run of at most :data:`CHAIN` consecutive frames
of one size) is predicted from the frames before it,

    p = 0:  η̂ = 0 (a key frame: the raw bits)
    p = 1:  η̂ = η₋₁
    p ≥ 2:  η̂ = clip(2·η₋₁ − η₋₂, 0, 1)     (linear extrapolation)

and stored as the residual ``r = bits(η) − bits(η̂)`` of the IEEE-754 bit
patterns read as 64-bit integers (wrapping), zigzag-coded so small residuals of
either sign have many leading zero bits. The residuals are stored in five
parts: their low 32 bits, then each of their four high bytes as a plane of its
own. A part of zeros costs nothing, a part that zstd shrinks is compressed,
the rest (the low bits, which are noise) are kept raw. Decoding
computes the same prediction in the same float64 arithmetic and adds the
residual back, so every bit returns: NaN, ±0, subnormals and values outside
[0, 1] included (they merely compress less).

A blob is self-describing: ``version (u8), kind (u8), n (u32)``, then for a
plane-coded frame five ``(mode u8, length u32)`` headers and the parts; small
frames (``n < 64``) are kept as raw little-endian doubles.

>>> import numpy as np
>>> frames = [np.linspace(0.0, 1.0, 1000) ** (1 + k / 10) for k in range(5)]
>>> decoded = decode_chain(encode_chain(frames))
>>> all(a.tobytes() == b.tobytes() for a, b in zip(frames, decoded))
True
"""

from __future__ import annotations

import struct
import threading
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

CHAIN = 6  # frames per chain: decoding a frame reads at most this many (8: 1.3 % smaller, replay ~30 % slower)
VERSION = 1
_RAW, _PLANES = 0, 1  # blob kinds
_ZERO, _PLAIN, _ZSTD = 0, 1, 2  # plane modes
_SMALL = 64  # frames below this many values are stored raw (headers would outweigh any gain)
_SAMPLE = 4096  # values of a part compressed first, to skip zstd on parts that are noise
_WIDTHS = ("<u4", "u1", "u1", "u1", "u1")  # the low 32 bits, then bytes 4, 5, 6 and 7 of each residual
_HEAD = struct.Struct("<BBI")
_PLANE = struct.Struct("<BI")
_CODEC = pa.Codec("zstd", compression_level=1)
_WORK = threading.local()  # see work()


def work(name: str, n: int, dtype: str) -> np.ndarray:
    """This thread's work array ``name`` of ``n`` values, reused from call to call (its contents are undefined).

    A fresh array of a frame's size is fresh memory to the kernel: at 10⁵
    values each one costs page faults worth several passes over it, more than
    the arithmetic the codec does with it. Per thread, so encoders in a writer
    thread and a reader in another never share one.
    """
    arrays = _WORK.__dict__.setdefault("arrays", {})
    key = (name, np.dtype(dtype).str)
    buf = arrays.get(key)
    if buf is None or buf.size < n:
        buf = arrays[key] = np.empty(n, dtype)
    return buf[:n]


def predict(prev1: np.ndarray | None, prev2: np.ndarray | None) -> np.ndarray | None:
    """The prediction of the next frame from the one (``prev1``) and two (``prev2``) before it; ``None`` for a key frame.

    With ``prev2`` absent the prediction is ``prev1`` itself; otherwise it is
    this thread's work array ``"prediction"``, valid until the next call here.
    """
    if prev1 is None:
        return None
    if prev2 is None:
        return prev1
    with np.errstate(all="ignore"):  # finite η only reach the log; any bits predict, and decode repeats them
        out = np.multiply(prev1, 2.0, out=work("prediction", prev1.size, "<f8"))
        out -= prev2
        return np.clip(out, 0.0, 1.0, out=out)


def encode(eta: np.ndarray, prediction: np.ndarray | None) -> bytes:
    """One frame's blob: ``eta`` given the ``prediction`` of its chain (``None`` for a key frame)."""
    eta = np.ascontiguousarray(eta, dtype="<f8")
    n = eta.size
    if n < _SMALL:
        return _HEAD.pack(VERSION, _RAW, n) + eta.tobytes()
    bits = eta.view("<i8")
    residual, zigzag = work("residual", n, "<i8"), work("zigzag", n, "<i8")
    if prediction is None:
        np.copyto(residual, bits)
    else:
        np.subtract(bits, prediction.view("<i8"), out=residual)
    np.left_shift(residual, 1, out=zigzag)
    np.right_shift(residual, 63, out=residual)  # the sign, spread over all bits
    np.bitwise_xor(zigzag, residual, out=zigzag)
    zigzag = zigzag.view("<u8")
    top = int(zigzag.max()).bit_length()  # parts above the largest residual's bits are zero
    as_bytes = zigzag.view(np.uint8).reshape(n, 8)
    planes = work("planes", 8 * n, "u1")  # each part in a region of its own until the blob is joined
    heads, bodies = [], []
    for k, width in enumerate(_WIDTHS):
        shift = 0 if k == 0 else 24 + 8 * k
        if shift >= top:
            heads.append(_PLANE.pack(_ZERO, 0))
            continue
        if k:
            part = planes[(3 + k) * n:(4 + k) * n]
            np.copyto(part, as_bytes[:, 3 + k])  # byte 4, 5, 6 or 7 of each residual
        else:
            part = planes[:4 * n].view("<u4")
            np.copyto(part, zigzag.view("<u4").reshape(n, 2)[:, 0])  # the low 32 bits
        body, mode = part.data, _PLAIN
        if len(_CODEC.compress(part[:_SAMPLE], asbytes=True)) < 0.9 * part[:_SAMPLE].nbytes:
            packed = _CODEC.compress(part, asbytes=True)
            if len(packed) < part.nbytes:
                body, mode = packed, _ZSTD
        heads.append(_PLANE.pack(mode, len(body) if mode == _ZSTD else part.nbytes))
        bodies.append(body)
    return b"".join([_HEAD.pack(VERSION, _PLANES, n), *heads, *bodies])


def decode(blob: bytes, prediction: np.ndarray | None) -> np.ndarray:
    """The frame a blob holds, given the same ``prediction`` it was encoded with."""
    view = memoryview(blob)
    version, kind, n = _HEAD.unpack_from(view, 0)
    if version != VERSION:
        raise ValueError(f"η frame codec version {version} is unknown (this code reads {VERSION})")
    if kind == _RAW:
        return np.frombuffer(view, "<f8", n, _HEAD.size).astype(np.float64)
    zigzag = np.zeros(n, "<u8")
    as_bytes = zigzag.view(np.uint8).reshape(n, 8)  # each part is written into its own bytes: no shifts, no ORs
    at = _HEAD.size + len(_WIDTHS) * _PLANE.size
    for k, width in enumerate(_WIDTHS):
        mode, length = _PLANE.unpack_from(view, _HEAD.size + k * _PLANE.size)
        if mode == _ZERO:
            continue
        size = n * np.dtype(width).itemsize
        raw = view[at:at + length] if mode == _PLAIN else _CODEC.decompress(view[at:at + length], size, asbytes=True)
        part = np.frombuffer(raw, width, n)
        if k:
            as_bytes[:, 3 + k] = part  # byte 4, 5, 6 or 7 of each residual
        else:
            zigzag.view("<u4").reshape(n, 2)[:, 0] = part  # the low 32 bits
        at += length
    sign = np.bitwise_and(zigzag, np.uint64(1), out=work("sign", n, "<u8"))
    zigzag >>= np.uint64(1)
    residual = zigzag.view("<i8")
    residual ^= np.negative(sign.view("<i8"), out=sign.view("<i8"))
    if prediction is not None:
        residual += prediction.view("<i8")
    return residual.view("<f8")


def encode_chain(frames: Sequence[np.ndarray]) -> list[bytes]:
    """Blobs of consecutive frames of one chain (at most :data:`CHAIN`, one size), the first a key frame."""
    out: list[bytes] = []
    for k, eta in enumerate(frames):
        out.append(encode(eta, predict(frames[k - 1] if k >= 1 else None, frames[k - 2] if k >= 2 else None)))
    return out


def decode_chain(blobs: Iterable[bytes]) -> list[np.ndarray]:
    """Every frame of a chain (or of its first frames), from its blobs in order."""
    out: list[np.ndarray] = []
    for blob in blobs:
        out.append(decode(blob, predict(out[-1] if out else None, out[-2] if len(out) >= 2 else None)))
    return out


def register_eta_functions(con) -> None:
    """Make ``cfc_eta_decode(steps INTEGER[], pieces BLOB[]) -> DOUBLE[]`` callable on ``con``; idempotent.

    The ``eta_values`` view uses it: given the pieces of a chain's frames from
    the key frame on (in order, each labelled with its frame's step), it returns
    the chain's last frame.
    """
    import duckdb
    from duckdb.sqltypes import BLOB, DOUBLE, INTEGER

    try:
        con.create_function("cfc_eta_decode", _decode_lists, [duckdb.list_type(INTEGER), duckdb.list_type(BLOB)],
                            duckdb.list_type(DOUBLE), type="arrow", null_handling="special")
    except (duckdb.NotImplementedException, duckdb.CatalogException) as exc:
        if "already" not in str(exc):  # a second connection to a database this process holds has it
            raise


def _decode_lists(steps: pa.Array, pieces: pa.Array) -> pa.Array:
    frames = []
    for labels, parts in zip(steps.to_pylist(), pieces.to_pylist()):
        if not parts:
            frames.append(np.zeros(0))
            continue
        blobs, at = [], 0
        for k in range(1, len(parts) + 1):  # consecutive pieces of one step make one frame's blob
            if k == len(parts) or labels[k] != labels[at]:
                blobs.append(b"".join(parts[at:k]))
                at = k
        frames.append(decode_chain(blobs)[-1])
    offsets = np.zeros(len(frames) + 1, np.int64)
    np.cumsum([f.size for f in frames], out=offsets[1:])
    values = np.concatenate(frames) if frames else np.zeros(0)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values)).cast(pa.list_(pa.float64()))
