-- CoreCast dissector for Wireshark and tshark (Lua plugin, Wireshark 3.x/4.x).
--
-- What it dissects (docs/protocol.md sections 2 and 3):
--   * UDP 4341, LISP data (RFC 9300 section 5.1): the built-in "lisp-data"
--     dissector still reads the 8-byte LISP header; when the header's C bit
--     (RFC 9300's reserved R bit, mask 0x04 of the first byte) is set, the
--     payload is a CoreCast message and is dissected here. Without the C bit
--     the payload stays with lisp-data (an encapsulated IP packet).
--   * UDP 4340, the CoreCast service traffic from the source S to its ITR
--     (CoreCast messages with no LISP header).
--
-- CoreCast message, version 1: a 12-byte common header
--   | Ver=1 | Type | Flags | Reserved (16) | Stream ID (32) | Sequence Number (32) |
-- then, for type 1 DATA, the chunk; for type 2 REF (32 bytes in all),
--   Chunk Hash (64) | Source EID (32) | Destination EID (32) | Source Port (16) | Destination Port (16).
-- type 3 REF-LIST: Chunk Hash (64) | ETR RLOC (32) | Source EID (32) | Source Port (16) |
--   Count (16), then Count x { Destination EID (32) | Destination Port (16) }.
-- type 4 REF-MAP: Chunk Hash (64) | ETR RLOC (32) | Source EID (32) | Source Port (16) |
--   Destination Port (16) | Base Destination EID (32) | Length (16, bits) | Count (16, bits set),
--   then ceil(Length / 8) bytes of bitmap: bit i (most significant first) names Base + i.
-- Any other type is shown as "unknown type N" with its body as bytes (an
-- expert note, not an error), so later CoreCast types still read cleanly.
--
-- Filterable fields: corecast.version, corecast.type, corecast.flags,
-- corecast.reserved, corecast.stream, corecast.seq, corecast.chunk_len,
-- corecast.chunk, corecast.hash, corecast.src_eid, corecast.dst_eid,
-- corecast.sport, corecast.dport, corecast.body, corecast.lisp_c, corecast.etr_rloc,
-- corecast.count (REF-LIST, REF-MAP), corecast.base, corecast.map_len, corecast.bitmap (REF-MAP;
-- each destination it names is shown as a generated corecast.dst_eid).
--
-- Load it for one run:   tshark -X lua_script:scripts/wireshark/corecast.lua -r FILE
-- or install it (scripts/setup.sh does) into a Lua plugin folder, e.g.
-- /usr/lib/x86_64-linux-gnu/wireshark/plugins/ or ~/.local/lib/wireshark/plugins/.
-- Loading it twice (installed and -X lua_script:) is harmless: the second copy
-- sees the first and does nothing.

if Dissector.list ~= nil then
    for _, name in ipairs(Dissector.list()) do
        if name == "corecast" then
            return -- already loaded (installed plugin and -X lua_script: both given)
        end
    end
end

local LISP_DATA_PORT = 4341
local CORECAST_PORT = 4340
local LISP_FLAG_C = 0x04
local HEADER_LEN = 12
local REF_LEN = 32

local LIST_HEADER_LEN = 32
local LIST_ENTRY_LEN = 6
local MAP_HEADER_LEN = 40
local MAP_SHOW_MAX = 256 -- destinations of a REF-MAP listed one by one (the rest are counted)

local TYPE_NAMES = { [1] = "DATA", [2] = "REF", [3] = "REF-LIST", [4] = "REF-MAP" }

local corecast = Proto("corecast", "CoreCast")
corecast.prefs.mpeg_ts = Pref.bool("Dissect MPEG-TS chunks", true,
    "Hand a DATA chunk that is whole 188-byte TS packets (sync byte 0x47) to the MPEG-TS dissector")
local mp2t = Dissector.get("mp2t")

local f = {
    version = ProtoField.uint8("corecast.version", "Version", base.DEC, nil, 0xF0),
    type = ProtoField.uint8("corecast.type", "Type", base.DEC, TYPE_NAMES, 0x0F),
    flags = ProtoField.uint8("corecast.flags", "Flags", base.HEX),
    reserved = ProtoField.uint16("corecast.reserved", "Reserved", base.HEX),
    stream = ProtoField.uint32("corecast.stream", "Stream ID", base.DEC),
    seq = ProtoField.uint32("corecast.seq", "Sequence Number", base.DEC),
    chunk_len = ProtoField.uint32("corecast.chunk_len", "Chunk length", base.DEC),
    chunk = ProtoField.bytes("corecast.chunk", "Chunk"),
    hash = ProtoField.bytes("corecast.hash", "Chunk Hash (BLAKE2b-64)"),
    src_eid = ProtoField.ipv4("corecast.src_eid", "Source EID"),
    dst_eid = ProtoField.ipv4("corecast.dst_eid", "Destination EID"),
    sport = ProtoField.uint16("corecast.sport", "Source Port", base.DEC),
    dport = ProtoField.uint16("corecast.dport", "Destination Port", base.DEC),
    body = ProtoField.bytes("corecast.body", "Body"),
    lisp_c = ProtoField.bool("corecast.lisp_c", "Carried behind a LISP header with the C bit"),
    etr_rloc = ProtoField.ipv4("corecast.etr_rloc", "ETR RLOC"),
    count = ProtoField.uint16("corecast.count", "Count", base.DEC),
    base = ProtoField.ipv4("corecast.base", "Base Destination EID"),
    map_len = ProtoField.uint16("corecast.map_len", "Length (bits)", base.DEC),
    bitmap = ProtoField.bytes("corecast.bitmap", "Bitmap"),
}
corecast.fields = {
    f.version, f.type, f.flags, f.reserved, f.stream, f.seq, f.chunk_len, f.chunk,
    f.hash, f.src_eid, f.dst_eid, f.sport, f.dport, f.body, f.lisp_c, f.etr_rloc, f.count,
    f.base, f.map_len, f.bitmap,
}

local ex = {
    truncated = ProtoExpert.new("corecast.truncated", "CoreCast message shorter than its 12-byte header",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_version = ProtoExpert.new("corecast.bad_version", "CoreCast version is not 1",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_length = ProtoExpert.new("corecast.bad_length", "CoreCast REF is not 32 bytes",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_map = ProtoExpert.new("corecast.bad_map", "CoreCast REF-MAP malformed",
        expert.group.MALFORMED, expert.severity.ERROR),
    unknown_type = ProtoExpert.new("corecast.unknown_type", "CoreCast type not known to this dissector",
        expert.group.UNDECODED, expert.severity.NOTE),
}
corecast.experts = { ex.truncated, ex.bad_version, ex.bad_length, ex.bad_map, ex.unknown_type }

-- The bits set in the first ``nbytes`` bytes of ``tvb`` from ``off``.
local function popcount(tvb, off, nbytes)
    local n = 0
    for i = 0, nbytes - 1 do
        local b = tvb(off + i, 1):uint()
        while b ~= 0 do
            n = n + bit.band(b, 1)
            b = bit.rshift(b, 1)
        end
    end
    return n
end

-- A REF-MAP (type 4), whole or cut; ``info`` is the Info column so far. Returns the new Info column.
local function dissect_map(tvb, root, len, captured, info)
    local mlen = (captured >= MAP_HEADER_LEN) and tvb(36, 2):uint() or -1
    local count = (captured >= MAP_HEADER_LEN) and tvb(38, 2):uint() or -1
    local nbytes = math.floor((mlen + 7) / 8)
    local fault = nil
    if len <= MAP_HEADER_LEN then
        fault = string.format("REF-MAP of %d bytes, header needs 40 and a bitmap", len)
    elseif mlen == 0 or (mlen > 0 and len ~= MAP_HEADER_LEN + nbytes) then
        fault = string.format("REF-MAP of %d bytes for a length of %d bits", len, mlen)
    elseif mlen > 0 and tvb(32, 4):uint() + mlen - 1 > 4294967295 then
        fault = "REF-MAP range beyond 255.255.255.255"
    elseif count == 0 then
        fault = "REF-MAP with count 0"
    elseif mlen > 0 and captured == len then
        local spare = (8 - mlen % 8) % 8
        if spare > 0 and bit.band(tvb(len - 1, 1):uint(), bit.lshift(1, spare) - 1) ~= 0 then
            fault = string.format("REF-MAP with bits set after its length of %d bits", mlen)
        elseif popcount(tvb, MAP_HEADER_LEN, nbytes) ~= count then
            fault = string.format("REF-MAP count %d but %d bits set", count, popcount(tvb, MAP_HEADER_LEN, nbytes))
        end
    end
    if fault ~= nil then
        root:add_proto_expert_info(ex.bad_map, fault)
        return info .. " [malformed]"
    end
    if captured < MAP_HEADER_LEN then
        root:append_text(" [cut by the snap length]")
        return info .. " [cut by the snap length]"
    end
    root:add(f.hash, tvb(12, 8))
    root:add(f.etr_rloc, tvb(20, 4))
    root:add(f.src_eid, tvb(24, 4))
    root:add(f.sport, tvb(28, 2))
    root:add(f.dport, tvb(30, 2))
    root:add(f.base, tvb(32, 4))
    root:add(f.map_len, tvb(36, 2))
    root:add(f.count, tvb(38, 2))
    if captured < len then
        root:append_text(" [cut by the snap length]")
    else
        local bm = root:add(f.bitmap, tvb(MAP_HEADER_LEN, nbytes))
        local base_eid = tvb(32, 4):uint()
        local shown = 0
        for i = 0, mlen - 1 do
            local byte = tvb(MAP_HEADER_LEN + math.floor(i / 8), 1):uint()
            if bit.band(byte, bit.rshift(0x80, i % 8)) ~= 0 and shown < MAP_SHOW_MAX then
                local eid = base_eid + i
                local addr = string.format("%d.%d.%d.%d", math.floor(eid / 16777216) % 256,
                    math.floor(eid / 65536) % 256, math.floor(eid / 256) % 256, eid % 256)
                bm:add(f.dst_eid, tvb(MAP_HEADER_LEN + math.floor(i / 8), 1), Address.ip(addr)):set_generated()
                shown = shown + 1
            end
        end
        if count > shown then
            bm:append_text(string.format(" (%d destinations not listed)", count - shown))
        end
    end
    return info .. string.format(" %s:%u > %d destinations from %s port %u via %s hash=%s",
        tostring(tvb(24, 4):ipv4()), tvb(28, 2):uint(), count, tostring(tvb(32, 4):ipv4()), tvb(30, 2):uint(),
        tostring(tvb(20, 4):ipv4()), tostring(tvb(12, 8):bytes()))
end

-- Dissect one CoreCast message filling all of ``tvb``; return its length.
local function dissect_message(tvb, pinfo, tree, behind_lisp, reported)
    local len = reported or tvb:reported_len() -- the message's length on the wire (a capture may cut it)
    local captured = tvb:len()
    local root = tree:add(corecast, tvb(), "CoreCast")
    if behind_lisp then
        root:add(f.lisp_c, tvb(), true):set_generated()
    end
    pinfo.cols.protocol = "CoreCast"
    if captured < HEADER_LEN and len >= HEADER_LEN then
        root:append_text(" [cut by the snap length]")
        pinfo.cols.info = "CoreCast [cut by the snap length]"
        return len
    end
    if len < HEADER_LEN then
        root:add_proto_expert_info(ex.truncated, string.format("CoreCast message of %d bytes, header needs 12", len))
        pinfo.cols.info = "CoreCast [truncated]"
        return len
    end
    local first = tvb(0, 1):uint()
    local version = bit.rshift(first, 4)
    local mtype = bit.band(first, 0x0F)
    root:add(f.version, tvb(0, 1))
    local type_item = root:add(f.type, tvb(0, 1))
    root:add(f.flags, tvb(1, 1))
    root:add(f.reserved, tvb(2, 2))
    root:add(f.stream, tvb(4, 4))
    root:add(f.seq, tvb(8, 4))
    local stream = tvb(4, 4):uint()
    local seq = tvb(8, 4):uint()
    local name = TYPE_NAMES[mtype] or string.format("type %d", mtype)
    root:append_text(string.format(", %s, stream %u, seq %u", name, stream, seq))
    local info = string.format("CoreCast %s stream=%u seq=%u", name, stream, seq)
    if version ~= 1 then
        root:add_proto_expert_info(ex.bad_version, string.format("CoreCast version %d, expected 1", version))
        pinfo.cols.info = info .. " [bad version]"
        return len
    end
    if mtype == 1 then
        local chunk_range = (captured > HEADER_LEN) and tvb(HEADER_LEN) or tvb(0, HEADER_LEN)
        root:add(f.chunk_len, chunk_range, len - HEADER_LEN):set_generated()
        if captured > HEADER_LEN then
            root:add(f.chunk, tvb(HEADER_LEN))
            local n = len - HEADER_LEN
            if corecast.prefs.mpeg_ts and mp2t ~= nil and captured == len and n % 188 == 0
                and tvb(HEADER_LEN, 1):uint() == 0x47 then
                mp2t:call(tvb(HEADER_LEN):tvb(), pinfo, tree) -- the chunk is MPEG-TS: Wireshark's analysis
                pinfo.cols.protocol = "CoreCast"
            end
        end
        info = info .. string.format(" chunk=%d bytes", len - HEADER_LEN)
    elseif mtype == 2 then
        if len ~= REF_LEN then
            root:add_proto_expert_info(ex.bad_length, string.format("REF of %d bytes, expected 32", len))
            pinfo.cols.info = info .. " [bad length]"
            return len
        end
        if captured < REF_LEN then -- cut by the capture's snap length: show what is there
            for _, fld in ipairs({ { f.hash, 12, 8 }, { f.src_eid, 20, 4 }, { f.dst_eid, 24, 4 },
                                   { f.sport, 28, 2 }, { f.dport, 30, 2 } }) do
                if fld[2] + fld[3] <= captured then root:add(fld[1], tvb(fld[2], fld[3])) end
            end
            root:append_text(" [cut by the snap length]")
            pinfo.cols.info = info .. " [cut by the snap length]"
            return len
        end
        root:add(f.hash, tvb(12, 8))
        root:add(f.src_eid, tvb(20, 4))
        root:add(f.dst_eid, tvb(24, 4))
        root:add(f.sport, tvb(28, 2))
        root:add(f.dport, tvb(30, 2))
        info = info .. string.format(" %s:%u > %s:%u hash=%s", tostring(tvb(20, 4):ipv4()), tvb(28, 2):uint(),
            tostring(tvb(24, 4):ipv4()), tvb(30, 2):uint(), tostring(tvb(12, 8):bytes()))
    elseif mtype == 3 then
        local count = (captured >= LIST_HEADER_LEN) and tvb(30, 2):uint() or -1
        if len < LIST_HEADER_LEN or (count >= 0 and (count == 0 or len ~= LIST_HEADER_LEN + LIST_ENTRY_LEN * count)) then
            root:add_proto_expert_info(ex.bad_length, string.format("REF-LIST of %d bytes, count %d", len, count))
            pinfo.cols.info = info .. " [bad length]"
            return len
        end
        if captured < LIST_HEADER_LEN then
            root:append_text(" [cut by the snap length]")
            pinfo.cols.info = info .. " [cut by the snap length]"
            return len
        end
        root:add(f.hash, tvb(12, 8))
        root:add(f.etr_rloc, tvb(20, 4))
        root:add(f.src_eid, tvb(24, 4))
        root:add(f.sport, tvb(28, 2))
        root:add(f.count, tvb(30, 2))
        for i = 0, count - 1 do
            local off = LIST_HEADER_LEN + LIST_ENTRY_LEN * i
            if off + LIST_ENTRY_LEN > captured then
                root:append_text(" [cut by the snap length]")
                break
            end
            local entry = root:add(corecast, tvb(off, LIST_ENTRY_LEN), string.format("Entry %d: %s:%u", i + 1,
                tostring(tvb(off, 4):ipv4()), tvb(off + 4, 2):uint()))
            entry:add(f.dst_eid, tvb(off, 4))
            entry:add(f.dport, tvb(off + 4, 2))
        end
        info = info .. string.format(" %s:%u > %d destinations via %s hash=%s", tostring(tvb(24, 4):ipv4()),
            tvb(28, 2):uint(), count, tostring(tvb(20, 4):ipv4()), tostring(tvb(12, 8):bytes()))
    elseif mtype == 4 then
        info = dissect_map(tvb, root, len, captured, info)
    else
        type_item:add_proto_expert_info(ex.unknown_type, string.format("CoreCast type %d", mtype))
        if captured > HEADER_LEN then
            root:add(f.body, tvb(HEADER_LEN))
        end
    end
    pinfo.cols.info = info
    return len
end

-- UDP 4340: the source's CoreCast messages to its ITR's service address.
-- Also called by the postdissector below for LISP payloads (``behind_lisp`` set).
local behind_lisp = false
local lisp_reported = nil
function corecast.dissector(tvb, pinfo, tree)
    return dissect_message(tvb, pinfo, tree, behind_lisp, behind_lisp and lisp_reported or nil)
end

-- UDP 4341: the built-in LISP data dissector reads the LISP header; this
-- postdissector then dissects the payload as CoreCast when the C bit is set.
local udp_port = DissectorTable.get("udp.port")
local lisp_data_field = Field.new("lisp-data")
local corecast_handle = Dissector.get("corecast")
local corecast_post = Proto("corecast_post", "CoreCast behind LISP")

function corecast_post.dissector(tvb, pinfo, tree)
    local lisp = { lisp_data_field() }
    for _, fi in ipairs(lisp) do
        local range = fi.range
        if fi.len >= 8 and bit.band(range(0, 1):uint(), LISP_FLAG_C) ~= 0 then
            local start = fi.offset + 8
            if tvb:len() > start then
                -- a sub-tvb knows only what was captured: the wire length comes from the frame's
                behind_lisp, lisp_reported = true, pinfo.len - start
                corecast_handle:call(tvb(start):tvb(), pinfo, tree)
                behind_lisp, lisp_reported = false, nil
            else -- a C-marked LISP header with no payload at all
                local root = tree:add(corecast, range, "CoreCast (no message)")
                root:add_proto_expert_info(ex.truncated, "CoreCast message of 0 bytes, header needs 12")
                pinfo.cols.protocol = "CoreCast"
                pinfo.cols.info = "CoreCast [truncated]"
            end
        end
    end
end

register_postdissector(corecast_post)
udp_port:add(CORECAST_PORT, corecast)
