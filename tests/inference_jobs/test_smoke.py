from inference_jobs.services import task_create


def test_create_task_through_service(deployable):
    task = task_create(actor=deployable.member, **deployable.task_fields())
    assert task.gateway_port.port == 30000
    assert task.status == "pending"


def test_create_task_through_api(deployable, api_as):
    response = api_as(deployable.member).post("/api/v1/tasks/", deployable.api_payload(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["access_url"] == "http://gw.example.com:30000/v1"
    assert body["update_available"] is False
