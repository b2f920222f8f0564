"""Async scheduling (--async-scheduling, on by default with one rank): the scheduler plans step N+1
and queues it at the executor while step N runs. Over real HTTP the answers are those of a server
planning each step after the last (greedy, seeded sampling, a stop string, structured output, n = 2,
concurrent streams), and /metrics counts the steps planned ahead: most of them with it on, none off."""
import concurrent.futures as cf

import requests

from conftest import metrics, wait_idle

BODIES = [
    {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "ignore_eos": True},
    {"prompt": "The capital of France is", "max_tokens": 40, "temperature": 0.9, "seed": 7, "n": 2},
    {"prompt": "List three colors:", "max_tokens": 60, "temperature": 0, "stop": ["\n\n", "4."]},
    {"prompt": "Give me a JSON object with a name:", "max_tokens": 60, "temperature": 0.7, "seed": 3,
     "response_format": {"type": "json_object"}},
    {"prompt": "def fibonacci(n):", "max_tokens": 48, "temperature": 0, "frequency_penalty": 0.5,
     "logit_bias": {"198": -5}},
]


def answers(url):
    def one(body):
        r = requests.post(url + "/v1/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return [(c["text"], c["finish_reason"]) for c in sorted(r.json()["choices"], key=lambda c: c["index"])]
    with cf.ThreadPoolExecutor(len(BODIES)) as pool:  # concurrent: they share steps
        return list(pool.map(one, BODIES))


def test_answers_equal_with_and_without_and_steps_are_planned_ahead(server_factory):
    on = server_factory()
    off = server_factory("--no-async-scheduling")
    got_on, got_off = answers(on.url), answers(off.url)
    assert got_on == got_off
    assert any(f == "stop" for a in got_on for _, f in a), got_on  # something ended before max_tokens
    m_on, m_off = wait_idle(on.url), wait_idle(off.url)
    for m in (m_on, m_off):
        assert m["troupe:kv_blocks_used"] == 0, m
        assert m["troupe:num_requests_running"] == 0, m
    assert m_off["troupe:steps_planned_ahead_total"] == 0, m_off
    steps = metrics(on.url)["troupe:steps_planned_ahead_total"]
    assert steps >= 40, m_on  # the decode steps of the 40-60 token answers, nearly all of them
