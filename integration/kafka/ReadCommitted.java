// ReadCommitted reads a topic from its beginning to its end with Apache
// Kafka's own Java consumer under isolation.level=read_committed, and prints
// one line per record: partition, offset, key and value (both base64),
// separated by tabs. weir's tests use it to check exactly-once output with
// a reader that is not weir's.
//
//   java -cp 'JARS/*:CLASSES' ReadCommitted BOOTSTRAP TOPIC
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ReadCommitted {
    public static void main(String[] args) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        Base64.Encoder b64 = Base64.getEncoder();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(args[1])) {
                parts.add(new TopicPartition(pi.topic(), pi.partition()));
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts); // the last stable offsets
            StringBuilder out = new StringBuilder();
            long deadline = System.currentTimeMillis() + 120_000;
            while (!done(c, parts, end)) {
                if (System.currentTimeMillis() > deadline) {
                    throw new RuntimeException("did not reach the end offsets " + end + " within 2 minutes");
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    out.append(r.partition()).append('\t').append(r.offset()).append('\t')
                        .append(r.key() == null ? "-" : b64.encodeToString(r.key())).append('\t')
                        .append(r.value() == null ? "-" : b64.encodeToString(r.value())).append('\n');
                }
                System.out.print(out);
                out.setLength(0);
            }
        }
        System.out.flush();
    }

    static boolean done(KafkaConsumer<byte[], byte[]> c, List<TopicPartition> parts, Map<TopicPartition, Long> end) {
        for (TopicPartition tp : parts) {
            if (c.position(tp) < end.get(tp)) {
                return false;
            }
        }
        return true;
    }
}
