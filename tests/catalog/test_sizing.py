"""GET /models/{id}/sizing/: how many cards one instance needs on a pool the caller may deploy on."""

from __future__ import annotations

import pytest

from tests import factories

pytestmark = pytest.mark.django_db

QWEN2_72B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 8192,
    "intermediate_size": 29568,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "num_key_value_heads": 8,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "torch_dtype": "bfloat16",
}
YI_34B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 7168,
    "intermediate_size": 20480,
    "num_attention_heads": 56,
    "num_hidden_layers": 60,
    "num_key_value_heads": 8,
    "vocab_size": 64000,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}


def granted_pool(tenant, memory_per_card_gib: int):
    pool = factories.ComputePoolFactory(memory_per_card_gib=memory_per_card_gib)
    factories.PoolGrantFactory(pool=pool, tenant=tenant)
    return pool


def sizing(client, model, pool, **query):
    return client.get(f"/api/v1/models/{model.pk}/sizing/", {"compute_pool": pool.slug, **query})


def test_a_7b_fp16_model_on_80_gib_cards_takes_2(deployable, api_as):
    body = sizing(api_as(deployable.member), deployable.model, deployable.pool).json()
    assert (body["recommended"], body["table_minimum"], body["cards_by_memory"]) == (2, 2, 1)
    assert (body["parameter_count"], body["dtype"], body["memory_per_card_gib"]) == (6_738_415_616, "float16", 80)
    assert body["weights_bytes"] == 6_738_415_616 * 2


@pytest.mark.parametrize(
    ("config", "parameters", "recommended"),
    [(QWEN2_72B_CONFIG, 72_706_203_648, 8), (YI_34B_CONFIG, 34_388_917_248, 4)],
)
def test_larger_models_follow_the_table(deployable, api_as, config, parameters, recommended):
    model = factories.ModelFactory(
        tenant=deployable.tenant, config=config, parameter_count=parameters, dtype="bfloat16", context_length=None
    )
    body = sizing(api_as(deployable.member), model, deployable.pool).json()
    assert body["recommended"] == body["table_minimum"] == recommended


def test_a_long_context_on_small_cards_raises_the_recommendation_above_the_table(deployable, api_as):
    small_cards = granted_pool(deployable.tenant, memory_per_card_gib=24)
    client = api_as(deployable.member)
    default = sizing(client, deployable.model, small_cards).json()
    long = sizing(client, deployable.model, small_cards, context_length=131072).json()

    assert default["recommended"] == 2
    assert long["context_length"] == 131072
    assert long["kv_cache_bytes"] == 2 * 32 * 32 * 128 * 2 * 131072  # layers × KV heads × head size × fp16
    assert long["recommended"] == long["cards_by_memory"] == 4 > long["table_minimum"]


def test_the_pool_must_be_one_the_caller_may_deploy_on(deployable, api_as, platform_admin):
    ungranted = factories.ComputePoolFactory(slug="elsewhere")
    client = api_as(deployable.member)
    for query in ({"compute_pool": "elsewhere"}, {"compute_pool": "missing"}, {}):
        response = client.get(f"/api/v1/models/{deployable.model.pk}/sizing/", query)
        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["compute_pool"]
    assert sizing(api_as(platform_admin), deployable.model, ungranted).status_code == 200


def test_bad_numbers_are_field_errors(deployable, api_as):
    response = sizing(api_as(deployable.member), deployable.model, deployable.pool, context_length=0)
    assert response.status_code == 400 and list(response.json()["fields"]) == ["context_length"]
