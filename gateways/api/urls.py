from gateways.api.views import GatewayViewSet


def register(router) -> None:
    router.register("gateways", GatewayViewSet, basename="gateway")
