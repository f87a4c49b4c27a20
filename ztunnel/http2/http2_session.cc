#include "http2/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <fmt/format.h>

#include "sluice/common/assert.h"

#include <algorithm>
#include <cstring>

namespace sluice::ztunnel::http2 {

namespace {

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
          const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

std::vector<nghttp2_nv> headers(const Fields& fields) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const auto& f : fields) nv.push_back(header(f.name, f.value));
  return nv;
}

const Fields& noFields() {
  static const Fields none;
  return none;
}

}  // namespace

// nghttp2's callbacks, with access to the session's private state.
struct Http2Session::Callbacks {
  static Http2Session& self(void* user) { return *static_cast<Http2Session*>(user); }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Http2Session& s = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (s.role_ == Role::kClient) {
      // A response head (interim or final) starts afresh; a block after the final one is trailers.
      Stream* st = s.find(frame->hd.stream_id);
      if (st != nullptr && !st->finalHead) {
        st->fields.clear();
        st->status = 0;
      }
      return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (s.shutdown_) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // refuses the stream
    s.streams_[frame->hd.stream_id] = Stream{};
    ++s.open_;
    return 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t nameLength,
                      const uint8_t* value, size_t valueLength, uint8_t, void* user) {
    Http2Session& s = self(user);
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr) return 0;
    st->headerBytes += nameLength + valueLength + 32;
    if (st->headerBytes > s.limits_.maxHeaderBytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::string_view n = view(name, nameLength), v = view(value, valueLength);
    bool isTrailer = s.role_ == Role::kServer ? frame->headers.cat == NGHTTP2_HCAT_HEADERS : st->finalHead;
    (isTrailer ? st->trailers : st->fields).push_back({std::string(n), std::string(v)});
    if (isTrailer) return 0;
    if (s.role_ == Role::kServer) {
      if (n == ":method") st->isConnect = v == "CONNECT";
      else if (n == ":authority") st->request.authority = v;
      else if (n == ":scheme") st->hasScheme = true;
      else if (n == ":path") st->hasPath = true;
      else if (n == "forwarded") st->request.forwarded = v;
      else if (n == "traceparent") st->request.traceparent = v;
    } else if (n == ":status") {
      int status = 0;
      for (char c : v) status = c >= '0' && c <= '9' ? status * 10 + (c - '0') : -1000;
      st->status = std::max(status, 0);
    }
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Http2Session& s = self(user);
    int32_t id = frame->hd.stream_id;
    if (frame->hd.type == NGHTTP2_GOAWAY) s.peerWentAway_ = true;
    Stream* st = s.find(id);
    if (st == nullptr) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_HEADERS)) {
      if (s.role_ == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        s.events_.push_back({SessionEvent::Kind::kRequest, id});
      } else if (s.role_ == Role::kClient && !st->finalHead && st->status >= 200) {
        st->finalHead = true;
        s.events_.push_back({SessionEvent::Kind::kResponse, id});
      }
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      st->peerEnded = true;
      s.events_.push_back({SessionEvent::Kind::kEnd, id});
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t length, void* user) {
    Http2Session& s = self(user);
    Stream* st = s.find(id);
    if (st == nullptr || st->closed) {
      // Not ours (reset meanwhile): give the window straight back.
      nghttp2_session_consume_connection(session, length);
      return 0;
    }
    if (st->discard) {
      // Answered with an error: nobody will read it; drop it and reopen both windows.
      nghttp2_session_consume(session, id, length);
      return 0;
    }
    if (st->inbox.empty()) s.events_.push_back({SessionEvent::Kind::kData, id});
    st->inbox.append(reinterpret_cast<const char*>(data), length);
    st->unconsumed += length;
    return 0;
  }

  // A complete non-200 answer went out: ask the client to stop sending with RST_STREAM
  // NO_ERROR (RFC 9113 8.1), so the stream is freed now rather than when the client ends it.
  static int onFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    Http2Session& s = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr || !st->resetAfterAnswer) return 0;
    st->resetAfterAnswer = false;
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t errorCode, void* user) {
    Http2Session& s = self(user);
    Stream* st = s.find(id);
    if (st == nullptr || st->closed) return 0;
    --s.open_;
    if (st->released) {
      // The caller let it go while its last bytes were queued; they are out now.
      s.streams_.erase(id);
      return 0;
    }
    st->closed = true;
    st->errorCode = errorCode;
    s.events_.push_back({SessionEvent::Kind::kClosed, id});
    return 0;
  }

  // DATA is never copied into nghttp2: readData only sizes the frame (NGHTTP2_DATA_FLAG_NO_COPY)
  // and sendData appends its header and the payload, straight from the stream's outbox and then
  // its loan, to the output of the produce() call under way. Both only grow until sendData
  // takes from them (a loan ends only outside produce()), so the bytes sized here are still
  // there then.
  static ssize_t readData(nghttp2_session* session, int32_t id, uint8_t*, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user) {
    Http2Session& s = self(user);
    Stream* st = s.find(id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t available = st->unframed();
    size_t n = std::min(length, available);
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == available && st->finishRequested) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st->trailersToSend.empty()) {
        // The trailers' HEADERS frame carries END_STREAM instead of this DATA frame.
        std::vector<nghttp2_nv> nv = headers(st->trailersToSend);
        if (nghttp2_submit_trailer(session, id, nv.data(), nv.size()) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        st->trailersToSend.clear();
      }
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  static int sendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* header, size_t length,
                      nghttp2_data_source*, void* user) {
    Http2Session& s = self(user);
    std::string* out = s.produceOut_;
    // Over the caller's budget: nghttp2 offers the same frame again at the next produce().
    if (out == nullptr || out->size() >= s.produceLimit_) return NGHTTP2_ERR_WOULDBLOCK;
    int32_t id = frame->hd.stream_id;
    Stream* st = s.find(id);
    if (st == nullptr || st->unframed() < length) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    out->append(reinterpret_cast<const char*>(header), 9);
    size_t padding = frame->data.padlen;
    if (padding > 0) out->push_back(static_cast<char>(padding - 1));
    size_t fromOutbox = std::min(length, st->outbox.size() - st->outboxOffset);
    out->append(st->outbox, st->outboxOffset, fromOutbox);
    st->outboxOffset += fromOutbox;
    if (st->outboxOffset == st->outbox.size()) {
      st->outbox.clear();
      st->outboxOffset = 0;
    }
    if (size_t fromLoan = length - fromOutbox; fromLoan > 0) {
      out->append(reinterpret_cast<const char*>(st->loan.data()) + st->loanTaken, fromLoan);
      st->loanTaken += fromLoan;
      // All framed: the lender may take its bytes back.
      if (st->loanTaken == st->loan.size()) s.events_.push_back({SessionEvent::Kind::kWritable, id});
    }
    if (padding > 1) out->append(padding - 1, '\0');
    if (st->wasAboveHighWater && st->unframed() < kLowWater) {
      st->wasAboveHighWater = false;
      s.events_.push_back({SessionEvent::Kind::kWritable, id});
    }
    return 0;
  }
};

Result<std::unique_ptr<Http2Session>> Http2Session::create(Role role, SessionLimits limits) {
  std::unique_ptr<Http2Session> s(new Http2Session(role, limits));
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Callbacks::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, Callbacks::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Callbacks::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Callbacks::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, Callbacks::onStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, Callbacks::onFrameSend);
  nghttp2_session_callbacks_set_send_data_callback(cb, Callbacks::sendData);
  nghttp2_option* options = nullptr;
  nghttp2_option_new(&options);
  // The window reopens only for bytes the app has taken (consumed()).
  nghttp2_option_set_no_auto_window_update(options, 1);
  nghttp2_option_set_max_send_header_block_length(options, 64 << 10);
  int rc = role == Role::kServer ? nghttp2_session_server_new2(&s->session_, cb, s.get(), options)
                                 : nghttp2_session_client_new2(&s->session_, cb, s.get(), options);
  nghttp2_option_del(options);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) return fail(fmt::format("HTTP/2 session: {}", nghttp2_strerror(rc)));
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits.streamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits.maxHeaderBytes)},
  };
  rc = nghttp2_submit_settings(s->session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  if (rc == 0) rc = nghttp2_session_set_local_window_size(s->session_, NGHTTP2_FLAG_NONE, 0, limits.connectionWindow);
  if (rc != 0) return fail(fmt::format("HTTP/2 settings: {}", nghttp2_strerror(rc)));
  return s;
}

Http2Session::~Http2Session() { nghttp2_session_del(session_); }

Http2Session::Stream* Http2Session::find(int32_t stream) {
  auto it = streams_.find(stream);
  return it == streams_.end() ? nullptr : &it->second;
}
const Http2Session::Stream* Http2Session::find(int32_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? nullptr : &it->second;
}

Status Http2Session::receive(std::span<const uint8_t> bytes) {
  ssize_t rc = nghttp2_session_mem_recv(session_, bytes.data(), bytes.size());
  if (rc < 0) return fail(fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(rc))));
  return {};
}

Result<size_t> Http2Session::produce(std::string& out, size_t limit) {
  size_t before = out.size();
  produceOut_ = &out;  // sendData appends DATA frames here
  produceLimit_ = limit;
  while (out.size() < limit) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      produceOut_ = nullptr;
      return fail(fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(n))));
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  produceOut_ = nullptr;
  return out.size() - before;
}

bool Http2Session::wantsWrite() const { return nghttp2_session_want_write(session_) != 0; }

bool Http2Session::finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

std::vector<SessionEvent> Http2Session::takeEvents() {
  std::vector<SessionEvent> out;
  out.swap(events_);
  return out;
}

bool Http2Session::acceptsStreams() const {
  return !shutdown_ && !peerWentAway_ && open_ < limits_.maxConcurrentStreams &&
         open_ < nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

Result<int32_t> Http2Session::connect(const ConnectRequest& request) {
  Fields fields{{":method", "CONNECT"}, {":authority", request.authority}};
  if (!request.forwarded.empty()) fields.push_back({"forwarded", request.forwarded});
  if (!request.traceparent.empty()) fields.push_back({"traceparent", request.traceparent});
  SLUICE_TRY_ASSIGN(id, submitRequest(fields, false));
  streams_[id].request = request;
  return id;
}

int32_t Http2Session::submit(int32_t stream, const Fields& fields, bool endStream) {
  std::vector<nghttp2_nv> nv = headers(fields);
  nghttp2_data_provider provider{};
  provider.read_callback = Callbacks::readData;
  nghttp2_data_provider* body = endStream ? nullptr : &provider;
  return stream == 0 ? nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), body, nullptr)
                     : nghttp2_submit_response(session_, stream, nv.data(), nv.size(), body);
}

Result<int32_t> Http2Session::submitRequest(const Fields& fields, bool endStream) {
  if (role_ != Role::kClient) return fail("submitRequest() on a server session");
  if (!acceptsStreams()) return fail("the HTTP/2 connection takes no more streams");
  int32_t id = submit(0, fields, endStream);
  if (id < 0) return fail(fmt::format("HTTP/2 request: {}", nghttp2_strerror(id)));
  Stream& st = streams_[id];
  st.dataAttached = !endStream;
  st.finishRequested = endStream;
  ++open_;
  return id;
}

void Http2Session::submitResponse(int32_t stream, const Fields& fields, bool endStream) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed || role_ != Role::kServer) return;
  if (submit(stream, fields, endStream) != 0) return;
  st->dataAttached = !endStream;
  st->finishRequested = st->finishRequested || endStream;
}

const Fields& Http2Session::fields(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? noFields() : st->fields;
}

const Fields& Http2Session::trailers(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? noFields() : st->trailers;
}

bool Http2Session::peerEnded(int32_t stream) const {
  const Stream* st = find(stream);
  return st != nullptr && st->peerEnded;
}

void Http2Session::respond(int32_t stream, int status) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed) return;
  submitResponse(stream, {{":status", std::to_string(status)}}, status != 200);
  if (status != 200) {
    st->discard = st->resetAfterAnswer = true;
    if (st->unconsumed > 0) nghttp2_session_consume(session_, stream, st->unconsumed);
    st->unconsumed = 0;
    st->inbox.clear();
    st->inbox.shrink_to_fit();
  }
}

const ConnectRequest* Http2Session::request(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? nullptr : &st->request;
}

int Http2Session::status(int32_t stream) const {
  const Stream* st = find(stream);
  if (st == nullptr) return 0;
  if (role_ == Role::kServer) {
    // A server-side "status" is the verdict on the request's shape: 400 when malformed.
    bool wellFormed = st->isConnect && !st->hasScheme && !st->hasPath && !st->request.authority.empty();
    return wellFormed ? 0 : 400;
  }
  return st->status;
}

uint32_t Http2Session::errorCode(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->errorCode;
}

std::string& Http2Session::inbox(int32_t stream) {
  static thread_local std::string none;
  Stream* st = find(stream);
  if (st == nullptr) {
    none.clear();
    return none;
  }
  return st->inbox;
}

void Http2Session::consumed(int32_t stream, size_t bytes) {
  Stream* st = find(stream);
  if (st == nullptr) return;
  bytes = std::min(bytes, st->unconsumed);
  st->unconsumed -= bytes;
  if (st->closed) {
    nghttp2_session_consume_connection(session_, bytes);
  } else {
    nghttp2_session_consume(session_, stream, bytes);
  }
}

void Http2Session::resume(int32_t stream, Stream& s) {
  if (s.deferred && s.dataAttached && !s.closed) {
    s.deferred = false;
    nghttp2_session_resume_data(session_, stream);
  }
}

void Http2Session::write(int32_t stream, std::span<const uint8_t> bytes) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed || st->finishRequested) return;
  st->outbox.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (st->unframed() >= kHighWater) st->wasAboveHighWater = true;
  resume(stream, *st);
}

void Http2Session::lend(int32_t stream, std::span<const uint8_t> bytes) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed || st->finishRequested || bytes.empty()) return;
  SLUICE_CHECK(st->loan.empty(), "a stream takes one loan at a time");
  st->loan = bytes;
  st->loanTaken = 0;
  resume(stream, *st);
}

size_t Http2Session::lentTaken(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->loanTaken;
}

size_t Http2Session::endLoan(int32_t stream) {
  Stream* st = find(stream);
  if (st == nullptr) return 0;
  size_t taken = st->loanTaken;
  st->dropLoan();
  return taken;
}

size_t Http2Session::queued(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->unframed();
}

void Http2Session::finish(int32_t stream, const Fields& trailers) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed || st->finishRequested) return;
  st->finishRequested = true;
  st->trailersToSend = trailers;
  resume(stream, *st);
}

void Http2Session::reset(int32_t stream, uint32_t errorCode) {
  Stream* st = find(stream);
  if (st == nullptr) return;
  st->dropLoan();  // never framed now
  if (!st->closed) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, errorCode);
    st->closed = true;  // no kClosed event for a stream the caller reset itself
    --open_;
  }
}

void Http2Session::release(int32_t stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  Stream& st = it->second;
  st.dropLoan();  // the caller's bytes are not ours to keep
  if (st.unconsumed > 0) {
    if (st.closed) {
      nghttp2_session_consume_connection(session_, st.unconsumed);
    } else {
      nghttp2_session_consume(session_, stream, st.unconsumed);
    }
    st.unconsumed = 0;
  }
  if (!st.closed && (st.outbox.size() > st.outboxOffset || st.finishRequested || st.resetAfterAnswer)) {
    // What the caller queued (its last bytes, END_STREAM) still goes out: the stream stays
    // until nghttp2 closes it, and DATA arriving meanwhile is dropped.
    st.released = st.discard = true;
    st.inbox.clear();
    return;
  }
  if (!st.closed) --open_;
  streams_.erase(it);
}

void Http2Session::shutdownNotice() {
  if (shutdown_) return;
  nghttp2_submit_shutdown_notice(session_);  // fails (ignored) for a client session
}

void Http2Session::shutdown() {
  if (shutdown_) return;
  shutdown_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

}  // namespace sluice::ztunnel::http2
