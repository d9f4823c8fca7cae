package dev.latte.tests;

import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;

/** Paths of the golden files copied into this module's test resources. */
public final class Resources {
    private Resources() {
    }

    public static Path golden(String relative) {
        URL url = Resources.class.getResource("/golden/" + relative);
        if (url == null) {
            throw new IllegalStateException("missing test resource golden/" + relative);
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static Path unetTiny() {
        return golden("unet-tiny");
    }
}
