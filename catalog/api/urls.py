from catalog.api.views import ModelFamilyViewSet, ModelViewSet, RuntimeImageViewSet


def register(router) -> None:
    router.register("model-families", ModelFamilyViewSet, basename="model-family")
    router.register("models", ModelViewSet, basename="model")
    router.register("runtime-images", RuntimeImageViewSet, basename="runtime-image")
