"""Raw gRPC calls of etcd's Lock and Election services (v3lockpb, v3electionpb), for the
tests: neither etcdctl nor python-etcd3 calls them. The few messages are encoded and decoded
by hand (protobuf wire format: varints and length-delimited fields), so the field numbers
here are checked against a real etcd by test_concurrency.py."""
import grpc

LOCK = "/v3lockpb.Lock/"
ELECTION = "/v3electionpb.Election/"


def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc(*fields):
    """fields: (number, value) with value int (varint), bytes/str (length-delimited) or None
    (left out). Zero ints and empty bytes are left out, as proto3 does."""
    out = bytearray()
    for num, v in fields:
        if v is None:
            continue
        if isinstance(v, int):
            if v:
                out += _varint(num << 3) + _varint(v)
        else:
            if isinstance(v, str):
                v = v.encode()
            out += _varint((num << 3) | 2) + _varint(len(v)) + v
    return bytes(out)


def dec(b):
    """{field number: [values]}: ints for varints, bytes for length-delimited fields."""
    out, i = {}, 0
    while i < len(b):
        key, i = _read_varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(b, i)
        elif wt == 2:
            n, i = _read_varint(b, i)
            v, i = bytes(b[i:i + n]), i + n
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def one(d, num, default=None):
    return d.get(num, [default])[0]


def header(resp):
    h = dec(one(resp, 1, b""))
    return {"revision": one(h, 3, 0), "raft_term": one(h, 4, 0)}


def kv(b):
    d = dec(b)
    return {"key": one(d, 1, b""), "create_revision": one(d, 2, 0), "mod_revision": one(d, 3, 0),
            "version": one(d, 4, 0), "value": one(d, 5, b""), "lease": one(d, 6, 0)}


def leader_key(name, key, rev, lease):
    return enc((1, name), (2, key), (3, rev), (4, lease))


class Conc:
    """Lock and Election calls on one endpoint ("127.0.0.1:2379")."""

    def __init__(self, endpoint):
        self.ch = grpc.insecure_channel(endpoint)

    def close(self):
        self.ch.close()

    def _unary(self, path, req, timeout):
        call = self.ch.unary_unary(path, request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        return dec(call(req, timeout=timeout))

    def lock_future(self, name, lease=0, timeout=30):
        call = self.ch.unary_unary(LOCK + "Lock", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        return call.future(enc((1, name), (2, lease)), timeout=timeout)

    def lock(self, name, lease=0, timeout=30):
        r = self._unary(LOCK + "Lock", enc((1, name), (2, lease)), timeout)
        return one(r, 2, b""), header(r)

    def unlock(self, key, timeout=10):
        return header(self._unary(LOCK + "Unlock", enc((1, key)), timeout))

    def campaign_future(self, name, value, lease=0, timeout=30):
        call = self.ch.unary_unary(ELECTION + "Campaign", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        return call.future(enc((1, name), (2, lease), (3, value)), timeout=timeout)

    @staticmethod
    def campaign_result(raw):
        r = dec(raw)
        lk = dec(one(r, 2, b""))
        return {"name": one(lk, 1, b""), "key": one(lk, 2, b""), "rev": one(lk, 3, 0),
                "lease": one(lk, 4, 0)}, header(r)

    def campaign(self, name, value, lease=0, timeout=30):
        return self.campaign_result(self.campaign_future(name, value, lease, timeout).result())

    def proclaim(self, lk, value, timeout=10):
        return header(self._unary(ELECTION + "Proclaim",
                                  enc((1, leader_key(**lk)), (2, value)), timeout))

    def resign(self, lk, timeout=10):
        return header(self._unary(ELECTION + "Resign", enc((1, leader_key(**lk))), timeout))

    def leader(self, name, timeout=10):
        r = self._unary(ELECTION + "Leader", enc((1, name)), timeout)
        return kv(one(r, 2, b"")), header(r)

    def observe(self, name, timeout=30):
        """An iterator of (kv, header); cancel() it when done."""
        call = self.ch.unary_stream(ELECTION + "Observe", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        return call(enc((1, name)), timeout=timeout)

    @staticmethod
    def observed(raw):
        r = dec(raw)
        return kv(one(r, 2, b"")), header(r)
