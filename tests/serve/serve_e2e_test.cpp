// kd serve through real HTTP on loopback: the server in this process (port 0) for the routes, limits and
// errors, and the kd binary for the command line and SIGTERM's drain.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "../models/tiny_bert.h"
#include "../models/tiny_lm_folder.h"
#include "../tolerance.h"
#include "kd/data/text_dataset.h"
#include "kd/io/atomic_file.h"
#include "kd/eval/evaluate.h"
#include "kd/models/classifier_registry.h"
#include "kd/serve/http_client.h"
#include "kd/serve/server.h"
#include "test_paths.h"

namespace {

using json = nlohmann::json;
using kd::serve::HttpClient;
using kd::serve::HttpReply;
using kd::serve::Server;
using kd::serve::ServeOptions;

std::string classifier_folder() {
  static const std::string dir = [] {
    const auto d = kd::test::temp_dir("serve_classifier") / "tiny-bert";
    std::filesystem::create_directories(d);
    kd::test::tiny_bert(2, 16, 2, 11)->save(d.string());
    return d.string();
  }();
  return dir;
}

std::string lm_folder() {
  static const std::string dir = kd::test::save_tiny_lm_folder(kd::test::temp_dir("serve_lm") / "tiny-lm");
  return dir;
}

// A server on a free loopback port, serving on its own thread until the object goes.
struct Running {
  Server server;
  int port;
  std::thread thread;
  Running(const std::string& model, ServeOptions o) : server(model, with_any_port(o)), port(server.bind()) {
    thread = std::thread([this] { server.listen(); });
  }
  ~Running() {
    while (!server.running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stop() needs listen()
    server.stop();
    thread.join();
  }
  static ServeOptions with_any_port(ServeOptions o) {
    o.port = 0;
    return o;
  }
};

json body_of(const HttpReply& r) { return json::parse(r.body); }

// The probabilities kd predict would give for these texts (one batch, evaluate()).
std::vector<std::vector<double>> reference_probabilities(const std::vector<std::string>& texts) {
  auto model = kd::load_classifier(classifier_folder());
  std::vector<kd::TextRow> rows(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) rows[i].texts = {texts[i]};
  kd::TextDataset data(rows, model->tokenizer(), model->labels(), model->max_length(), "ref");
  const auto p = torch::softmax(kd::evaluate(*model, data, 1, true).logits.to(torch::kFloat64), -1);
  std::vector<std::vector<double>> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    for (int64_t c = 0; c < p.size(1); ++c) out[i].push_back(p[static_cast<int64_t>(i)][c].item<double>());
  return out;
}

// Probabilities of a 2-layer, width-16 BERT: softmax of logits that went through ~2 layers of sums of 16-32
// terms; batching changes only padding (masked) and summation order.
double probability_tolerance() { return kd::test::fp32_tolerance(32, 4, 1.0); }

void expect_matches_reference(const json& results, const std::vector<std::string>& texts) {
  const auto ref = reference_probabilities(texts);
  ASSERT_EQ(results.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& probs = results[i]["probabilities"];
    ASSERT_EQ(probs.size(), 2u);
    EXPECT_NEAR(probs["neg"].get<double>(), ref[i][0], probability_tolerance()) << texts[i];
    EXPECT_NEAR(probs["pos"].get<double>(), ref[i][1], probability_tolerance()) << texts[i];
    EXPECT_EQ(results[i]["label"], ref[i][1] > ref[i][0] ? "pos" : "neg");
  }
}

TEST(ServeE2ETest, ClassifyAnswersLikeTheModelInRequestOrder) {
  Running s(classifier_folder(), {});
  HttpClient client("127.0.0.1", s.port);
  const std::vector<std::string> texts = {"w5 w6 w7 w8", "w9", "w10 w11 w12 w13 w14 w15 w16", "w17 w5"};
  const auto r = client.post("/v1/classify", json{{"texts", texts}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = body_of(r);
  EXPECT_EQ(body["model"], "tiny-bert");
  expect_matches_reference(body["results"], texts);
  // "text" for one text.
  const auto one = client.post("/v1/classify", json{{"text", "w9"}}.dump());
  ASSERT_EQ(one.status, 200) << one.body;
  expect_matches_reference(body_of(one)["results"], {"w9"});

  const auto health = client.get("/health");
  ASSERT_EQ(health.status, 200);
  EXPECT_EQ(body_of(health)["kind"], "classifier");
}

TEST(ServeE2ETest, ConcurrentRequestsShareBatchesAndEachGetsItsOwnAnswer) {
  ServeOptions o;
  o.batching.max_batch = 64;
  o.batching.max_wait_ms = 200;  // wide, so that the 16 requests below surely meet in few batches
  Running s(classifier_folder(), o);
  const int n = 48;  // more than cpp-httplib's listen backlog of 5 (see server.cpp)
  std::vector<std::string> texts;
  for (int i = 0; i < n; ++i) texts.push_back("w" + std::to_string(5 + i) + " w" + std::to_string(30 - i));
  std::vector<json> answers(n);
  std::vector<int> status(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      HttpClient client("127.0.0.1", s.port);
      const auto r = client.post("/v1/classify", json{{"texts", {texts[i]}}}.dump());
      status[i] = r.status;
      errors[i] = r.error;
      if (r.status == 200) answers[i] = body_of(r)["results"][0];
    });
  for (auto& t : threads) t.join();
  json all = json::array();
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(status[i], 200) << errors[i];
    all.push_back(answers[i]);
  }
  expect_matches_reference(all, texts);
  HttpClient client("127.0.0.1", s.port);
  const auto metrics = client.get("/metrics").body;
  const auto at = metrics.find("\nkd_batch_rows_count ");
  ASSERT_NE(at, std::string::npos) << metrics;
  const int batches = std::stoi(metrics.substr(at + 21));
  EXPECT_GE(batches, 1);
  EXPECT_LT(batches, n) << "no two requests shared a batch";
  EXPECT_NE(metrics.find("kd_batch_rows_sum " + std::to_string(n) + "\n"), std::string::npos) << metrics;
}

// Each bad request: status, and the field the error names (empty: none).
struct BadRequest {
  std::string method, path, body;
  int status;
  std::string param;
};

TEST(ServeE2ETest, BadRequestsGetJsonErrorsNamingTheFieldAndTheServerKeepsServing) {
  ServeOptions o;
  o.max_texts = 3;
  o.max_body_bytes = 2000;
  Running s(classifier_folder(), o);
  HttpClient client("127.0.0.1", s.port);
  const std::string big(3000, 'w');
  const std::vector<BadRequest> cases = {
      {"POST", "/v1/classify", "{\"texts\": [\"w5\"", 400, ""},                   // malformed JSON
      {"POST", "/v1/classify", "", 400, ""},                                      // no body
      {"POST", "/v1/classify", "[1, 2]", 400, ""},                                // not an object
      {"POST", "/v1/classify", "{}", 400, "texts"},                               // missing texts
      {"POST", "/v1/classify", "{\"texts\": 5}", 400, "texts"},                   // wrong type
      {"POST", "/v1/classify", "{\"texts\": []}", 400, "texts"},                  // empty list
      {"POST", "/v1/classify", "{\"texts\": [\"w5\", 7]}", 400, "texts[1]"},      // wrong element type
      {"POST", "/v1/classify", "{\"texts\": [\"w5\", \"  \"]}", 400, "texts[1]"},  // empty text
      {"POST", "/v1/classify", "{\"texts\": [[\"a\"]]}", 400, "texts[0]"},        // a pair of one
      {"POST", "/v1/classify", "{\"texts\": [\"a\", \"b\", \"c\", \"d\"]}", 400, "texts"},  // over max_texts
      {"POST", "/v1/classify", "{\"text\": \"a\", \"texts\": [\"b\"]}", 400, "texts"},
      {"POST", "/v1/classify", "{\"texts\": [\"\xff\xfe\"]}", 400, ""},           // invalid UTF-8
      {"POST", "/v1/classify", "{\"texts\": [\"" + big + "\"]}", 413, ""},        // body over the limit
      {"POST", "/v1/completions", "{\"prompt\": \"hi\"}", 404, ""},               // not an LM server
      {"GET", "/v1/classify", "", 405, ""},                                       // wrong method
      {"DELETE", "/health", "", 405, ""},
      {"GET", "/nowhere", "", 404, ""},                                           // unknown route
  };
  for (const auto& c : cases) {
    const auto r = client.send(c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body.substr(0, 60) << " -> " << r.body;
    json e;
    ASSERT_NO_THROW(e = body_of(r)) << r.body;
    ASSERT_TRUE(e.contains("error")) << r.body;
    EXPECT_FALSE(e["error"]["message"].get<std::string>().empty());
    if (!c.param.empty()) {
      EXPECT_EQ(e["error"]["param"], c.param) << r.body;
    }
  }
  EXPECT_EQ(client.send("GET", "/v1/classify").headers["Allow"], "POST");
  // Still serving, and every answer counted by route and status.
  EXPECT_EQ(client.post("/v1/classify", json{{"texts", {"w5"}}}.dump()).status, 200);
  const auto metrics = client.get("/metrics").body;
  EXPECT_NE(metrics.find("kd_requests_total{route=\"/v1/classify\",status=\"400\"} 12"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kd_requests_total{route=\"/v1/classify\",status=\"413\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kd_requests_total{route=\"other\",status=\"404\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kd_requests_total{route=\"/v1/classify\",status=\"200\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kd_queue_depth 0"), std::string::npos) << metrics;
}

// What kd generate's model gives for `prompt`: the decoded text of greedy decoding up to the end-of-
// sequence token, and whether it stopped there.
std::pair<std::string, bool> greedy(const std::string& prompt, int64_t max_tokens) {
  auto lm = kd::load_causal_lm(lm_folder());
  lm.model->eval();
  torch::NoGradGuard no_grad;
  kd::GenerateOptions o;
  o.max_new_tokens = max_tokens;
  o.eos_id = lm.tokenizer.eos_id;
  auto ids = lm.model->generate(lm.tokenizer.encode(prompt), o);
  const bool eos = !ids.empty() && ids.back() == o.eos_id;
  if (eos) ids.pop_back();
  return {lm.tokenizer.decode(ids), eos};
}

// The text of a server-sent-event stream of completion chunks, checking its shape on the way.
std::string stream_text(const std::string& events, std::string& finish) {
  std::string text;
  size_t pos = 0;
  bool done = false;
  while (pos < events.size()) {
    const auto end = events.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "an event without its blank line";
    if (end == std::string::npos) break;
    const std::string event = events.substr(pos, end - pos);
    pos = end + 2;
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_FALSE(done) << "an event after [DONE]";
    if (event == "data: [DONE]") {
      done = true;
      continue;
    }
    const auto chunk = json::parse(event.substr(6));
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  return text;
}

TEST(ServeE2ETest, CompletionsGiveGreedyTextStreamedOrNotAndCutAtStopStrings) {
  Running s(lm_folder(), {});
  HttpClient client("127.0.0.1", s.port);
  const std::string prompt = "the other";
  const auto greedy_answer = greedy(prompt, 12);
  const std::string want = greedy_answer.first;
  const bool eos = greedy_answer.second;
  ASSERT_GE(want.size(), 4u) << "the tiny model's greedy text is too short to cut: " << want;

  const auto r = client.post("/v1/completions", json{{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = body_of(r);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], want);
  EXPECT_EQ(body["choices"][0]["finish_reason"], eos ? "stop" : "length");
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(body["usage"]["total_tokens"].get<int>(),
            body["usage"]["prompt_tokens"].get<int>() + body["usage"]["completion_tokens"].get<int>());

  std::string events, finish;
  int chunks = 0;
  const auto streamed = client.send("POST", "/v1/completions",
                                    json{{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"stream", true}}.dump(),
                                    "application/json", [&](const std::string& c) {
                                      events += c;
                                      ++chunks;
                                      return true;
                                    });
  ASSERT_EQ(streamed.status, 200) << streamed.error;
  EXPECT_EQ(streamed.headers.count("Content-Type") ? streamed.headers.at("Content-Type") : "", "text/event-stream");
  EXPECT_EQ(stream_text(events, finish), want);
  EXPECT_EQ(finish, eos ? "stop" : "length");

  // A stop string taken from the middle of the greedy text: the answer ends before it, in both modes.
  const std::string stop = want.substr(want.size() / 2, 2);
  const std::string before = want.substr(0, want.find(stop));
  const json ask = {{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"stop", {"\x01never", stop}}};
  const auto cut = body_of(client.post("/v1/completions", ask.dump()));
  EXPECT_EQ(cut["choices"][0]["text"], before);
  EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
  json ask_stream = ask;
  ask_stream["stream"] = true;
  events.clear();
  finish.clear();
  client.send("POST", "/v1/completions", ask_stream.dump(), "application/json", [&](const std::string& c) {
    events += c;
    return true;
  });
  EXPECT_EQ(stream_text(events, finish), before);
  EXPECT_EQ(finish, "stop");

  // Sampling with a seed is repeatable.
  const json sampled = {{"prompt", prompt}, {"max_tokens", 8}, {"temperature", 1.5}, {"seed", 42}};
  EXPECT_EQ(body_of(client.post("/v1/completions", sampled.dump()))["choices"][0]["text"],
            body_of(client.post("/v1/completions", sampled.dump()))["choices"][0]["text"]);
}

TEST(ServeE2ETest, BadCompletionRequestsNameTheField) {
  ServeOptions o;
  o.max_tokens = 20;
  Running s(lm_folder(), o);
  HttpClient client("127.0.0.1", s.port);
  const std::vector<std::pair<json, std::string>> cases = {
      {json::object(), "prompt"},
      {{{"prompt", 3}}, "prompt"},
      {{{"prompt", ""}}, "prompt"},
      {{{"prompt", {"a", "b"}}}, "prompt"},
      {{{"prompt", "hi"}, {"max_tokens", 0}}, "max_tokens"},
      {{{"prompt", "hi"}, {"max_tokens", -1}}, "max_tokens"},
      {{{"prompt", "hi"}, {"max_tokens", 21}}, "max_tokens"},
      {{{"prompt", "hi"}, {"max_tokens", 2.5}}, "max_tokens"},
      {{{"prompt", std::string(50, 'x')}, {"max_tokens", 20}}, "max_tokens"},  // 70 tokens: past the context of 64
      {{{"prompt", "hi"}, {"temperature", "hot"}}, "temperature"},
      {{{"prompt", "hi"}, {"temperature", 3}}, "temperature"},
      {{{"prompt", "hi"}, {"top_p", 0}}, "top_p"},
      {{{"prompt", "hi"}, {"stop", {"a", "b", "c", "d", "e"}}}, "stop"},
      {{{"prompt", "hi"}, {"stop", {"a", ""}}}, "stop[1]"},
      {{{"prompt", "hi"}, {"stream", "yes"}}, "stream"},
      {{{"prompt", "hi"}, {"seed", -4}}, "seed"},
  };
  for (const auto& [body, param] : cases) {
    const auto r = client.post("/v1/completions", body.dump());
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.body;
    EXPECT_EQ(body_of(r)["error"]["param"], param) << body.dump() << " -> " << r.body;
  }
  EXPECT_EQ(client.post("/v1/classify", json{{"texts", {"a"}}}.dump()).status, 404);
  EXPECT_EQ(client.post("/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 2}}.dump()).status, 200);
}

// The kd binary: flags, the "listening" line, SIGTERM drains and exits 0.
TEST(ServeE2ETest, TheCommandServesUntilSigtermAndAnswersWhatItAcceptedFirst) {
  const auto dir = kd::test::temp_dir("serve_cli");
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    const std::string exe = kd::test::kd_exe(), model = classifier_folder();
    // A wide batching window keeps the request below in flight when SIGTERM arrives; 2 threads, so that
    // LibTorch's intra-op pool exists and must not take the signal.
    execl(exe.c_str(), exe.c_str(), "serve", "--model", model.c_str(), "--port", "0", "--batch-wait-ms", "800",
          "--threads", "2", "--log-level", "warn", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[512] = {0};
  ASSERT_NE(fgets(line, sizeof line, f), nullptr) << "kd serve printed nothing";
  const std::string text = line;
  const auto colon = text.rfind(':');
  ASSERT_NE(text.find("listening on http://127.0.0.1:"), std::string::npos) << text;
  const int port = std::stoi(text.substr(colon + 1));

  std::atomic<int> status{0};
  std::thread request([&] {
    HttpClient client("127.0.0.1", port);
    status = client.post("/v1/classify", json{{"texts", {"w5 w6"}}}.dump()).status;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the request waits in the batcher
  kill(pid, SIGTERM);
  request.join();
  EXPECT_EQ(status.load(), 200) << "the request accepted before SIGTERM was not answered";
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  EXPECT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  fclose(f);
  // After the drain nothing listens.
  HttpClient late("127.0.0.1", port, 2);
  EXPECT_EQ(late.get("/health").status, 0);
}

TEST(ServeE2ETest, BadServeFlagsFailInOneLine) {
  const auto dir = kd::test::temp_dir("serve_flags");
  const std::string exe = kd::test::kd_exe();
  for (const std::string flags : {"--max-batch 0", "--batch-wait-ms -1", "--request-timeout 0", "--port 70000"}) {
    const std::string cmd = exe + " serve --model " + classifier_folder() + " " + flags + " 2>" +
                            (dir / "err.txt").string() + " >/dev/null";
    const int code = WEXITSTATUS(std::system(cmd.c_str()));
    EXPECT_NE(code, 0) << flags;
    const auto err = kd::read_file((dir / "err.txt").string());
    EXPECT_NE(err.find("kd: error:"), std::string::npos) << flags << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << flags << ": " << err;
  }
}

}  // namespace
