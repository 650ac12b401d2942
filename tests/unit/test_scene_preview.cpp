// ScenePreview: the eye tracker's scene keyframes scaled into shared memory with the gaze fields.
#include "preview_shm.hpp"
#include "scene_preview.hpp"
#include "scene_support.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <thread>

using namespace scene_test;

TEST_CASE("scene preview: keyframes scaled into shared memory with the gaze fields") {
    const Scene scene = make_scene(640, 480, 31, /*strip_sets=*/true);
    const std::string name = "/pilogger-unit-" + std::to_string(getpid()) + "-scene-preview";
    PreviewShm::Image image;
    {
        ScenePreview preview(name, 160, 120, 30, scene.parameter_sets);
        CHECK(preview.name() == name);
        CHECK_FALSE(PreviewShm::read(name, image));  // made, no frame yet
        preview.set_gaze(320.0f, 120.0f, 1'000'000'000);
        preview.offer(scene.units[1], 1'000'000'000);  // not a keyframe: not decoded
        preview.offer(scene.units[0], 1'010'000'000);
        for (int i = 0; i < 400 && preview.published() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(preview.published() == 1);
        REQUIRE(PreviewShm::read(name, image));
        CHECK(image.header.header_bytes == 80);
        CHECK(image.header.width == 160);
        CHECK(image.header.height == 120);
        CHECK(image.header.stride == 480);
        CHECK(image.header.format == kPreviewRgb24);
        CHECK(image.header.frame_mono_ns == 1'010'000'000);
        CHECK(image.header.frame_index == 1);
        CHECK(image.header.writer_pid == static_cast<uint32_t>(getpid()));
        CHECK(image.gaze.x == doctest::Approx(0.5));
        CHECK(image.gaze.y == doctest::Approx(0.25));
        CHECK(image.gaze.mono_ns == 1'000'000'000);
        REQUIRE(image.pixels.size() == 160u * 120u * 3u);
        // The gradient: darker top left than bottom right, grey (R = G = B within a few levels).
        const auto pixel = [&](int x, int y) { return &image.pixels[static_cast<size_t>(y) * 480u + static_cast<size_t>(x) * 3u]; };
        CHECK(pixel(2, 60)[0] + 30 < pixel(157, 117)[0]);
        CHECK(std::abs(pixel(80, 80)[0] - pixel(80, 80)[2]) < 8);

        // A gaze sample far from the frame's instant is not shown with it.
        preview.set_gaze(10.0f, 10.0f, 1'000'000'000);
        preview.offer(scene.units[30], 3'000'000'000);
        for (int i = 0; i < 400 && preview.published() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(preview.published() == 2);
        REQUIRE(PreviewShm::read(name, image));
        CHECK(image.header.frame_index == 2);
        CHECK(image.gaze.mono_ns == 0);
    }
    CHECK_FALSE(PreviewShm::read(name, image));  // removed
    CHECK_THROWS_AS(ScenePreview(name, 0, 120, 10, scene.parameter_sets), std::invalid_argument);
    CHECK_FALSE(PreviewShm::read(name, image));
}
