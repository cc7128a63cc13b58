// A single embedded Elasticsearch node for the test-suite (started by scripts/services.py).
// Usage: java -cp <libs>/*:<classes> NexusElasticsearchNode <home> <data> <http port> <transport port>
//
// <home>/modules/ holds one folder per module (jars and a plugin-descriptor.properties, laid out by
// services.py): transport-netty4 (the Netty4 plugin from Maven Central: the HTTP and transport
// layer) and nexus-root (NexusRootPlugin.java, compiled into its own jar).
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

public class NexusElasticsearchNode {
    public static void main(String[] args) throws Exception {
        Path home = Paths.get(args[0]).toAbsolutePath();
        Path data = Paths.get(args[1]).toAbsolutePath();
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.resolve("data").toString())
            .put("path.logs", data.resolve("logs").toString())
            .put("cluster.name", "nexus-test")
            .put("node.name", "nexus-test-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[2])
            .put("transport.port", args[3])
            .put("discovery.type", "single-node")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            // the tests delete their indices by prefix (`DELETE /t_abc*`); 8.x refuses wildcards
            .put("action.destructive_requires_name", false)
            .build();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), null, () -> "nexus-test-node");
        LogConfigurator.configureESLogging();
        LogConfigurator.configureWithoutConfig(environment.settings());
        // no server module layer here (the jars are on the class path), so no qualified exports
        PluginsLoader plugins = PluginsLoader.createPluginsLoader(
            PluginsLoader.loadModulesBundles(environment.modulesDir()), Set.of(), Map.of(), false);
        Node node = new Node(environment, plugins);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }));
        node.start();
        System.out.println("nexus-elasticsearch-node started");
        stopped.await();
    }
}
